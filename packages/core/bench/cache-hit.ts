/**
 * Cache-hit cost of backgroundToken, against a baseline measured in the same run: an async function
 * around a Map lookup. Prints operations per second and the ratio for the Effect API (one program
 * running many calls), the Effect API run per call, and the Promise facade.
 *
 *   pnpm --filter @token-broker/core bench
 */
import { randomBytes } from "node:crypto"
import { performance } from "node:perf_hooks"
import { startDevIdp } from "@token-broker/dev-idp"
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

const measure = async (name: string, op: () => Promise<unknown>) => {
  for (let i = 0; i < 20_000; i++) await op()
  let ops = 0
  const started = performance.now()
  while (performance.now() - started < DURATION_MS) {
    for (let i = 0; i < 1000; i++) await op()
    ops += 1000
  }
  const perSecond = ops / ((performance.now() - started) / 1000)
  return { name, opsPerSecond: Math.round(perSecond), microsPerOp: 1e6 / perSecond }
}

const idp = await startDevIdp()
const alice = idp.users[0]
if (alice === undefined) throw new Error("dev-idp has no user")
const client = idp.client("token-broker")
const provider = {
  id: "notes",
  issuer: idp.issuer,
  clientId: client.clientId,
  clientAuthentication: {
    method: "client_secret_basic" as const,
    clientSecret: Redacted.make(client.clientSecret ?? "")
  },
  redirectUri: `${idp.issuer}/__dev/callback`,
  defaultScopes: ["notes:read", "notes:write"],
  resource: idp.notesAudience,
  allowInsecureRequests: true
}
const keyRing = KeyRing.layerLocal({
  keys: [{ kid: "k1", key: Redacted.make(new Uint8Array(randomBytes(32))) }]
})
const store = Layer.succeed(GrantStore.GrantStore, Effect.runSync(GrantStore.makeMemory))

const facade = await createTokenBroker({ store, keyRing, providers: [provider] })
const { authorizationUrl } = await facade.startAuthorization({ subject: alice.sub, provider: "notes" })
await facade.completeAuthorization(await idp.driveAuthorization(authorizationUrl, alice))
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
        TokenVerifier.layer({ issuers: [{ issuer: idp.issuer }], allowInsecureRequests: true })
      )
    )
  )
)
const broker = await runtime.runPromise(TokenBroker.TokenBroker)
await runtime.runPromise(broker.backgroundToken(request))

const map = new Map([["default/alice/notes", { accessToken: "x", expiresAt: Date.now() + 300_000 }]])
const baseline = await measure("baseline: async function around a Map lookup", async () =>
  map.get("default/alice/notes")
)
const perCall = await measure("Effect API, runtime.runPromise per call", () =>
  runtime.runPromise(broker.backgroundToken(request))
)
const batch = 1000
const inProgram = await measure("Effect API, calls inside one program", async () => undefined)
{
  // One program that performs `batch` calls: the cost an Effect app pays per call.
  const program = Effect.repeatN(broker.backgroundToken(request), batch - 1)
  for (let i = 0; i < 20; i++) await runtime.runPromise(program)
  let ops = 0
  const started = performance.now()
  while (performance.now() - started < DURATION_MS) {
    await runtime.runPromise(program)
    ops += batch
  }
  const perSecond = ops / ((performance.now() - started) / 1000)
  Object.assign(inProgram, { opsPerSecond: Math.round(perSecond), microsPerOp: 1e6 / perSecond })
}
const viaFacade = await measure("Promise facade, await per call", () => facade.backgroundToken(request))

const results = [baseline, inProgram, perCall, viaFacade].map((r) => ({
  ...r,
  microsPerOp: Number(r.microsPerOp.toFixed(3)),
  ratioToBaseline: Number((baseline.opsPerSecond / r.opsPerSecond).toFixed(1))
}))
console.log(
  "core cache hit: backgroundToken for a cached token (higher ops/s is better; ratio = baseline / this)"
)
for (const r of results) {
  console.log(
    `  ${r.name.padEnd(48)} ${String(r.opsPerSecond).padStart(10)} ops/s  ${r.microsPerOp.toFixed(2).padStart(7)} us/op  x${r.ratioToBaseline}`
  )
}
console.log(`BENCH_JSON ${JSON.stringify({ benchmark: "core-cache-hit", results })}`)

await facade.close()
await runtime.dispose()
await idp.close()
