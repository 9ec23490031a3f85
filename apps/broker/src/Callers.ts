import * as crypto from "node:crypto"
import { randomBytes } from "node:crypto"
import { type CallerPolicy, hashSecret, verifySecret } from "@token-broker/config"
import { Effect } from "effect"

/**
 * Registered callers: authentication (client id + secret against the stored scrypt hash) and policy.
 *
 * scrypt is slow on purpose (tens of milliseconds), so a successful verification is remembered for a few
 * minutes under a SHA-256 of a per-process random key and the presented credentials: a hot caller pays
 * for scrypt once, and that memo holds no secret. Unknown ids cost the same scrypt as known ones. The
 * digest is one-shot (`crypto.hash`, about half the cost of an HMAC object per request).
 *
 * Credentials that came in a Basic header, once verified (in full, or through the memo above), are
 * remembered under that exact header as well, so a repeat request is one Map read: no decoding, no
 * digest (the header's SHA-256 was about 1 us of the background token's ~27 us cache hit, with its
 * string concatenation; CPU profile of bench/http.ts under perf). A header that differs in any byte
 * (another secret, another spelling of the same one) is not found, so a wrong secret never hits; only a
 * header whose credentials verified is ever stored. The Map compares a key's content only after its
 * string hash (seeded per process) matched, so how long a miss takes tells nothing about a stored
 * header. This memo does hold the header, and so the secret, in memory for as long as it is
 * remembered - as the process already holds every upstream access token it caches, its providers'
 * client secrets and its key ring; a header longer than `MAX_REMEMBERED_HEADER` characters is never
 * stored (it authenticates through the credentials' memo instead), and at most
 * `MAX_REMEMBERED_HEADERS` are, the oldest forgotten first: a bounded few megabytes at worst.
 * Callers are fixed for the life of the process (a change of config is a restart), so nothing is
 * left to evict a caller that is no longer registered.
 *
 * Because every verification costs a scrypt, a flood of bad credentials is limited before it reaches
 * scrypt: failures are counted per client address (a fixed window), and at most `maxConcurrent`
 * verifications run at once with at most `maxQueued` waiting. A remembered caller skips both.
 */
export type Authentication =
  | { readonly _tag: "Authenticated"; readonly caller: CallerPolicy }
  | { readonly _tag: "Refused" }
  /** Too many failures from this address, or too many verifications waiting: retry after this. */
  | { readonly _tag: "Limited"; readonly retryAfterSeconds: number; readonly reason: "failures" | "busy" }

export interface CallerAuth {
  /**
   * Verifies a client id and secret. `basicHeader`: the Authorization header they were decoded from,
   * remembered with them on success (for `rememberedBasic`).
   */
  readonly authenticate: (
    clientId: string,
    secret: string,
    address: string,
    basicHeader?: string
  ) => Promise<Authentication>
  /** The caller a Basic Authorization header authenticated within the remembered time; undefined otherwise. */
  readonly rememberedBasic: (header: string) => CallerPolicy | undefined
}

export interface CallerAuthLimits {
  readonly maxFailures: number
  readonly failureWindowMs: number
  readonly maxConcurrent: number
  readonly maxQueued: number
}

/** One-shot SHA-256 where Node has it (20.12 and later), else a hash object. */
const digest: (text: string) => string =
  typeof crypto.hash === "function"
    ? (text) => crypto.hash("sha256", text, "base64url")
    : (text) => crypto.createHash("sha256").update(text).digest("base64url")

const VERIFIED_TTL_MS = 5 * 60_000
const MAX_VERIFIED = 10_000
/** Basic headers remembered at once (each verified); beyond, the oldest is forgotten. */
export const MAX_REMEMBERED_HEADERS = 1_000
/** The longest Basic header remembered (an id of 256 and a secret of 1,024 characters fit in base64). */
export const MAX_REMEMBERED_HEADER = 2_048
/** Addresses with failures tracked at once; beyond, expired windows are dropped first. */
const MAX_TRACKED_ADDRESSES = 100_000

export const makeCallerAuth = (
  callers: ReadonlyArray<CallerPolicy>,
  limits: CallerAuthLimits
): CallerAuth => {
  const byId = new Map(callers.map((caller) => [caller.id, caller]))
  const key = randomBytes(32).toString("base64")
  const verified = new Map<string, { readonly id: string; readonly until: number }>()
  const remember = (mac: string, id: string, now: number) => {
    if (verified.size >= MAX_VERIFIED) verified.clear()
    verified.set(mac, { id, until: now + VERIFIED_TTL_MS })
  }
  const recall = (memo: Map<string, { readonly id: string; readonly until: number }>, key: string) => {
    const hit = memo.get(key)
    return hit !== undefined && hit.until > Date.now() ? byId.get(hit.id) : undefined
  }
  // verified Basic headers by their exact value (see the module comment), oldest first
  const verifiedHeaders = new Map<string, { readonly id: string; readonly until: number }>()
  const rememberHeader = (header: string, id: string, now: number) => {
    if (header.length > MAX_REMEMBERED_HEADER) return
    verifiedHeaders.delete(header)
    if (verifiedHeaders.size >= MAX_REMEMBERED_HEADERS) {
      const oldest = verifiedHeaders.keys().next()
      if (oldest.done !== true) verifiedHeaders.delete(oldest.value)
    }
    verifiedHeaders.set(header, { id, until: now + VERIFIED_TTL_MS })
  }
  const failures = new Map<string, { count: number; readonly resetAt: number }>()
  const verifications = Effect.unsafeMakeSemaphore(limits.maxConcurrent)
  let running = 0
  let waiting = 0
  // A hash of a random secret: unknown ids are verified against it, so they take as long as known ones.
  let dummy: Promise<string> | undefined

  const failuresOf = (address: string, now: number) => {
    const entry = failures.get(address)
    if (entry === undefined || entry.resetAt <= now) return undefined
    return entry
  }

  const countFailure = (address: string, now: number) => {
    const entry = failuresOf(address, now)
    if (entry !== undefined) {
      entry.count += 1
      return
    }
    if (failures.size >= MAX_TRACKED_ADDRESSES) {
      for (const [tracked, value] of failures) if (value.resetAt <= now) failures.delete(tracked)
      if (failures.size >= MAX_TRACKED_ADDRESSES) failures.clear()
    }
    failures.set(address, { count: 1, resetAt: now + limits.failureWindowMs })
  }

  const verify = async (secret: string, hash: string): Promise<boolean> => {
    waiting += 1
    return Effect.runPromise(
      verifications.withPermits(1)(
        Effect.suspend(() => {
          waiting -= 1
          running += 1
          return verifySecret(secret, hash)
        }).pipe(
          Effect.ensuring(
            Effect.sync(() => {
              running -= 1
            })
          )
        )
      )
    )
  }

  const authenticate: CallerAuth["authenticate"] = async (clientId, secret, address, basicHeader) => {
    // the key is fixed-length base64, so the id and the secret after it cannot shift into it
    const mac = digest(`${key}${clientId}\u0000${secret}`)
    const now = Date.now()
    const remembered = recall(verified, mac)
    if (remembered !== undefined) {
      if (basicHeader !== undefined) rememberHeader(basicHeader, remembered.id, now)
      return { _tag: "Authenticated", caller: remembered }
    }
    const failed = failuresOf(address, now)
    if (failed !== undefined && failed.count >= limits.maxFailures) {
      return {
        _tag: "Limited",
        reason: "failures",
        retryAfterSeconds: Math.max(1, Math.ceil((failed.resetAt - now) / 1000))
      }
    }
    if (running >= limits.maxConcurrent && waiting >= limits.maxQueued) {
      return { _tag: "Limited", reason: "busy", retryAfterSeconds: 1 }
    }
    const caller = byId.get(clientId)
    let ok: boolean
    if (caller === undefined) {
      dummy ??= Effect.runPromise(hashSecret(randomBytes(16).toString("base64url")))
      await verify(secret, await dummy)
      ok = false
    } else {
      ok = await verify(secret, caller.secretHash)
    }
    if (!ok || caller === undefined) {
      countFailure(address, Date.now())
      return { _tag: "Refused" }
    }
    remember(mac, caller.id, now)
    if (basicHeader !== undefined) rememberHeader(basicHeader, caller.id, now)
    return { _tag: "Authenticated", caller }
  }
  return { authenticate, rememberedBasic: (header) => recall(verifiedHeaders, header) }
}

/** RFC 6749 section 2.3.1: the Basic credentials are form-urlencoded before base64. */
export const parseBasic = (header: string): { clientId: string; secret: string } | undefined => {
  const match = /^Basic ([A-Za-z0-9+/=._~-]+)\s*$/i.exec(header)
  if (match === null) return undefined
  const decoded = Buffer.from(match[1] ?? "", "base64").toString("utf8")
  const colon = decoded.indexOf(":")
  if (colon < 0) return undefined
  try {
    const decodeComponent = (text: string) => decodeURIComponent(text.replace(/\+/g, "%20"))
    return {
      clientId: decodeComponent(decoded.slice(0, colon)),
      secret: decodeComponent(decoded.slice(colon + 1))
    }
  } catch {
    return undefined
  }
}

const matches = (patterns: ReadonlyArray<string>, value: string): boolean =>
  patterns.some((pattern) =>
    pattern === "*"
      ? true
      : pattern.endsWith("*")
        ? value.startsWith(pattern.slice(0, -1))
        : pattern === value
  )

export const allowsProvider = (caller: CallerPolicy, provider: string): boolean =>
  matches(caller.providers, provider)

export const allowsSubject = (caller: CallerPolicy, subject: string): boolean =>
  matches(caller.subjects, subject)

export const allowsAnyScope = (caller: CallerPolicy): boolean => caller.scopes.includes("*")

/** The first asked scope the caller may not ask for. */
export const deniedScope = (caller: CallerPolicy, scopes: ReadonlyArray<string>): string | undefined =>
  allowsAnyScope(caller) ? undefined : scopes.find((scope) => !caller.scopes.includes(scope))

export const allowsAllProviders = (caller: CallerPolicy): boolean => caller.providers.includes("*")

export const allowsAllSubjects = (caller: CallerPolicy): boolean => caller.subjects.includes("*")

/**
 * Whether the caller may exchange this subject token: one issued to the caller itself, to a client its
 * policy names (`subjectTokens.clientIds`), or for an audience it names (`subjectTokens.audiences`).
 */
export const allowsSubjectToken = (
  caller: CallerPolicy,
  token: { readonly clientId: string | null; readonly audience: ReadonlyArray<string> }
): boolean =>
  (token.clientId !== null &&
    (token.clientId === caller.id ||
      caller.subjectTokens.clientIds.includes("*") ||
      caller.subjectTokens.clientIds.includes(token.clientId))) ||
  token.audience.some((audience) => caller.subjectTokens.audiences.includes(audience))
