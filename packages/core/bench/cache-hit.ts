/**
 * Cache-hit cost of backgroundToken, against baselines measured in the same run: an async function
 * around a Map lookup (for the Promise facade and one runPromise per call) and an `Effect.sync` around
 * a Map lookup in the same runtime (for calls inside one program). Prints operations per second and
 * the ratio of each. dev-idp runs in a process of its own: its AsyncLocalStorage would otherwise put
 * async hooks on every promise of this one, which a broker process never pays.
 *
 *   pnpm --filter @token-broker/core bench
 *
 * BENCH_ONLY=<part of a name> runs only the matching candidates (for a profile of one path, summed by
 * `bench/profile-summary.ts`).
 */
import { randomBytes } from "node:crypto"
import { performance } from "node:perf_hooks"
import { driveAuthorization, spawnDevIdp } from "@token-broker/dev-idp/process"
import { Effect, Layer, ManagedRuntime, Redacted } from "effect"
import {
  AccessTokenCache,
  AuthorizationServer,
  createTokenBroker,
  GrantStore,
  KeyRing,
  TokenBroker,
  TokenVerifier
} from "../src/index.js"

const DURATION_MS = Number(process.env.BENCH_DURATION_MS ?? 2000)

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5)

const ONLY = process.env.BENCH_ONLY

/** One candidate: performs `n` calls; a baseline names none, the others name their baseline. */
interface Candidate {
  readonly name: string
  readonly baseline?: string
  readonly run: (n: number) => Promise<void>
}

/**
 * Operations per second of one candidate over about `ms` milliseconds, in slices of 1,000 calls. A
 * function declaration, so that CPU profiles name it (`bench/profile-summary.ts` looks for it).
 */
async function opsPerSecond(candidate: Candidate, ms: number) {
  let ops = 0
  const started = performance.now()
  while (performance.now() - started < ms) {
    await candidate.run(1000)
    ops += 1000
  }
  return ops / ((performance.now() - started) / 1000)
}

const median = (values: ReadonlyArray<number>) => {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1
    ? (sorted[middle] ?? Number.NaN)
    : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2
}

const idp = await spawnDevIdp()
const alice = idp.info.users[0]
if (alice === undefined) throw new Error("dev-idp has no user")
const client = idp.client("token-broker")
const provider = {
  id: "notes",
  issuer: idp.info.issuer,
  clientId: client.clientId,
  clientAuthentication: {
    method: "client_secret_basic" as const,
    clientSecret: Redacted.make(client.clientSecret ?? "")
  },
  redirectUri: `${idp.info.issuer}/__dev/callback`,
  defaultScopes: ["notes:read", "notes:write"],
  resource: idp.info.notesAudience,
  allowInsecureRequests: true
}
const keyRing = KeyRing.layerLocal({
  keys: [{ kid: "k1", key: Redacted.make(new Uint8Array(randomBytes(32))) }]
})
const store = Layer.succeed(GrantStore.GrantStore, Effect.runSync(GrantStore.makeMemory))

const facade = await createTokenBroker({ store, keyRing, providers: [provider] })
const { authorizationUrl } = await facade.startAuthorization({ subject: alice.sub, provider: "notes" })
await facade.completeAuthorization(await driveAuthorization(authorizationUrl, alice))
const request = { subject: alice.sub, provider: "notes" }
await facade.backgroundToken(request)

const runtime = ManagedRuntime.make(
  TokenBroker.layer().pipe(
    Layer.provide(
      Layer.mergeAll(
        store,
        keyRing,
        AuthorizationServer.layer([provider]),
        AccessTokenCache.layer(),
        TokenVerifier.layer({ issuers: [{ issuer: idp.info.issuer }], allowInsecureRequests: true })
      )
    )
  )
)
const broker = await runtime.runPromise(TokenBroker.TokenBroker)
await runtime.runPromise(broker.backgroundToken(request))

const map = new Map([["default/alice/notes", { accessToken: "x", expiresAt: Date.now() + 300_000 }]])
const lookup = async () => map.get("default/alice/notes")
const inRuntime = (effect: Effect.Effect<unknown, unknown>) => {
  const programs = new Map<number, Effect.Effect<unknown, unknown>>()
  return async (n: number) => {
    let program = programs.get(n)
    if (program === undefined) {
      program = Effect.repeatN(effect, n - 1)
      programs.set(n, program)
    }
    await runtime.runPromise(program)
  }
}
const asyncMap = "async function around a Map lookup"
const syncMap = "Effect.sync around a Map lookup, in the same runtime"
const allCandidates: ReadonlyArray<Candidate> = [
  {
    name: asyncMap,
    run: async (n) => {
      for (let i = 0; i < n; i++) await lookup()
    }
  },
  { name: syncMap, run: inRuntime(Effect.sync(() => map.get("default/alice/notes"))) },
  {
    name: "Promise facade, await per call",
    baseline: asyncMap,
    run: async (n) => {
      for (let i = 0; i < n; i++) await facade.backgroundToken(request)
    }
  },
  {
    name: "Effect API, calls inside one program",
    baseline: syncMap,
    run: inRuntime(broker.backgroundToken(request))
  },
  {
    name: "Effect API, runtime.runPromise per call",
    baseline: asyncMap,
    run: async (n) => {
      for (let i = 0; i < n; i++) await runtime.runPromise(broker.backgroundToken(request))
    }
  }
]

const candidates =
  ONLY === undefined ? allCandidates : allCandidates.filter((candidate) => candidate.name.includes(ONLY))
if (candidates.length === 0) throw new Error(`BENCH_ONLY=${ONLY} names no candidate`)

// A hit must be a hit: both paths answer from the cache before and after the run.
const assertHits = async () => {
  const viaFacade = await facade.backgroundToken(request)
  const viaEffect = await runtime.runPromise(broker.backgroundToken(request))
  if (viaFacade.source !== "cache" || viaEffect.source !== "cache") {
    throw new Error(`not a cache hit: facade ${viaFacade.source}, Effect API ${viaEffect.source}`)
  }
}
await assertHits()
for (const candidate of candidates) await opsPerSecond(candidate, 300)
// Alternating rounds: every candidate once per round, in a rotated order; ratios are taken within a round.
const perRound = new Map<string, Array<number>>(candidates.map((c) => [c.name, []]))
for (let round = 0; round < ROUNDS; round++) {
  const order = candidates.map((_, i) => candidates[(i + round) % candidates.length] as Candidate)
  for (const candidate of order)
    perRound.get(candidate.name)?.push(await opsPerSecond(candidate, DURATION_MS / ROUNDS))
}
await assertHits()

const results = candidates.map((candidate) => {
  const rounds = perRound.get(candidate.name) ?? []
  const base = candidate.baseline === undefined ? undefined : perRound.get(candidate.baseline)
  const ratios = base === undefined ? [] : rounds.map((ops, i) => (base[i] ?? Number.NaN) / ops)
  const ops = median(rounds)
  return {
    name: candidate.name,
    baseline: candidate.baseline ?? null,
    opsPerSecond: Math.round(ops),
    microsPerOp: Number((1e6 / ops).toFixed(3)),
    ratioToBaseline: base === undefined ? null : Number(median(ratios).toFixed(2)),
    ratioSpread:
      base === undefined ? null : [Math.min(...ratios), Math.max(...ratios)].map((r) => Number(r.toFixed(2)))
  }
})
console.log(
  `core cache hit: backgroundToken for a cached token, median of ${ROUNDS} alternating rounds (ratio = time per call / its baseline's)`
)
for (const r of results) {
  console.log(
    `  ${r.name.padEnd(52)} ${String(r.opsPerSecond).padStart(10)} ops/s  ${r.microsPerOp.toFixed(2).padStart(7)} us/op  ${r.ratioToBaseline === null ? "baseline" : `x${r.ratioToBaseline} (${r.ratioSpread?.join("-")})`}`
  )
}
console.log(`BENCH_JSON ${JSON.stringify({ benchmark: "core-cache-hit", rounds: ROUNDS, results })}`)

await facade.close()
await runtime.dispose()
await idp.close()
