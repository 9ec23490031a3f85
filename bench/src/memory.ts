/**
 * Memory per cached token at 100,000 subjects: the heap that core's AccessTokenCache holds for 100,000
 * entries (cache key of subject, provider and scopes -> Redacted access token, expiry, scopes, grant id,
 * LRU bookkeeping), against a baseline measured in the same process: a plain Map of the same 100,000 key
 * strings to the same token strings. Each side is measured as the heap delta after a forced GC (run with
 * `node --expose-gc`), with the token strings allocated before either measurement, so each delta is what
 * the structure adds; the figure per cached token is that plus the key and token strings themselves.
 *
 *   node --expose-gc --import tsx src/memory.ts        (BENCH_MEMORY_SUBJECTS to change 100,000)
 */
import { randomBytes } from "node:crypto"
import { AccessTokenCache } from "@token-broker/core"
import { Effect, Redacted } from "effect"

const SUBJECTS = Number(process.env.BENCH_MEMORY_SUBJECTS ?? 100_000)
const gc = (globalThis as { gc?: () => void }).gc
if (gc === undefined) throw new Error("run with node --expose-gc")

const heap = () => {
  for (let i = 0; i < 4; i++) gc()
  return process.memoryUsage().heapUsed
}

// a JWT-sized access token (dev-idp's are about 700 characters), distinct per subject
const filler = randomBytes(520).toString("base64url")
const provider = "notes"
const scopes = ["notes:read", "notes:write"]
const expiresAt = Date.now() + 3_600_000

const before = heap()
const grantIds = Array.from(
  { length: SUBJECTS },
  (_, i) => `default/subject-${String(i).padStart(8, "0")}/${provider}`
)
const keys = grantIds.map((grantId) => AccessTokenCache.cacheKey(grantId, scopes, null))
const tokens = grantIds.map((_, i) => `eyJ${String(i).padStart(8, "0")}.${filler}`.slice(0))
// flatten the token strings (a concatenation is a rope until first read)
for (const token of tokens) token.charCodeAt(token.length - 1)
const inputs = heap() - before

const baselineStart = heap()
const map = new Map<string, string>()
for (let i = 0; i < SUBJECTS; i++) map.set(keys[i] as string, tokens[i] as string)
const baselineBytes = heap() - baselineStart

const cacheStart = heap()
const cache = AccessTokenCache.makeSync({ maxEntries: SUBJECTS * 2 })
for (let i = 0; i < SUBJECTS; i++) {
  Effect.runSync(
    cache.set(grantIds[i] as string, keys[i] as string, {
      accessToken: Redacted.make(tokens[i] as string),
      expiresAt,
      scopes
    })
  )
}
const cacheBytes = heap() - cacheStart
if (cache.size() !== SUBJECTS || map.size !== SUBJECTS) throw new Error("not every entry was kept")

const perEntry = (bytes: number) => Math.round(bytes / SUBJECTS)
// per cached token, all in: the key and token strings plus what each structure adds
const result = {
  name: "memory-per-cached-token",
  subjects: SUBJECTS,
  tokenChars: tokens[0]?.length ?? 0,
  keyAndTokenBytes: perEntry(inputs),
  cacheBytesPerToken: perEntry(inputs + cacheBytes),
  baselineBytesPerToken: perEntry(inputs + baselineBytes),
  cacheOverheadBytes: perEntry(cacheBytes),
  baselineOverheadBytes: perEntry(baselineBytes),
  ratio: Number(((inputs + cacheBytes) / (inputs + baselineBytes)).toFixed(2))
}
console.log(
  `memory at ${SUBJECTS} cached tokens (${result.tokenChars}-character tokens): AccessTokenCache ` +
    `${result.cacheBytesPerToken} B per token (${result.cacheOverheadBytes} B on top of key and token), a plain ` +
    `Map of the same keys to the same strings ${result.baselineBytesPerToken} B (${result.baselineOverheadBytes} B ` +
    `on top): ratio ${result.ratio}`
)
console.log(`BENCH_JSON ${JSON.stringify(result)}`)
