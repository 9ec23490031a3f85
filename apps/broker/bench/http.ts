/**
 * HTTP benchmark: the background-token route on a cache hit (authentication, policy, validation, the
 * in-process cache, JSON) against a bare fastify route answering a JSON body of the same size, in one run
 * on one machine. Prints requests per second, p99 latency and the ratio, then a `BENCH_JSON {...}` line.
 *
 *   pnpm --filter @token-broker/broker-app bench        (BENCH_SECONDS=10 BENCH_CONNECTIONS=50 to change)
 */
import { randomBytes } from "node:crypto"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { hashSecret, parseConfig } from "@token-broker/config"
import { startDevIdp } from "@token-broker/dev-idp"
import autocannon from "autocannon"
import { Effect } from "effect"
import Fastify from "fastify"
import { startBroker } from "../src/Broker.js"

const seconds = Number(process.env.BENCH_SECONDS ?? 5)
const connections = Number(process.env.BENCH_CONNECTIONS ?? 32)

const idp = await startDevIdp({ redirectUris: [] })
const dir = await mkdtemp(join(tmpdir(), "tb-bench-"))
const secret = randomBytes(24).toString("base64url")
const config = await Effect.runPromise(
  parseConfig(
    {
      server: { port: 0, logLevel: "warn", rateLimit: { max: 100_000_000, timeWindow: "1 minute" } },
      storage: { kind: "sqlite", filename: join(dir, "grants.db") },
      keyRing: { kind: "local", keys: [{ kid: "k1", env: "KEY" }] },
      providers: [
        {
          id: "notes",
          issuer: idp.issuer,
          clientId: "token-broker",
          clientAuthentication: { method: "client_secret_basic", clientSecret: { env: "NOTES_SECRET" } },
          redirectUri: `${idp.issuer}/__dev/callback`,
          scopes: ["notes:read", "notes:write"],
          resource: idp.notesAudience,
          allowInsecureRequests: true
        }
      ],
      callers: [
        {
          id: "bench",
          secretHash: await Effect.runPromise(hashSecret(secret)),
          providers: ["*"],
          subjects: ["*"],
          scopes: ["*"],
          backgroundTokens: true,
          grants: "manage"
        }
      ]
    },
    { KEY: randomBytes(32).toString("base64"), NOTES_SECRET: idp.client("token-broker").clientSecret },
    { baseDir: dir }
  )
)
const broker = await startBroker(config, { host: "127.0.0.1" })
const authorization = `Basic ${Buffer.from(`bench:${secret}`).toString("base64")}`
const user = idp.users[0]
if (user === undefined) throw new Error("dev-idp has no user")

// connect alice: authorize -> dev-idp's login/consent (headless) -> the broker's callback with the same query
const started = (await (
  await fetch(`${broker.url}/v1/grants/${user.sub}/notes/authorize`, {
    method: "POST",
    headers: { authorization, "content-type": "application/json" },
    body: "{}"
  })
).json()) as { authorizationUrl: string }
const callback = await idp.driveAuthorization(started.authorizationUrl, {
  username: user.username,
  password: user.password
})
const consent = await fetch(`${broker.url}/connect/callback${callback.search}`)
if (consent.status !== 200) throw new Error(`consent failed: ${consent.status}`)

const tokenPath = `/v1/grants/${user.sub}/notes/token`
const prime = async () => {
  const response = await fetch(`${broker.url}${tokenPath}`, { method: "POST", headers: { authorization } })
  return { status: response.status, text: await response.text() }
}
await prime()
const primed = await prime()
if (!primed.text.includes('"source":"cache"')) throw new Error(`not a cache hit: ${primed.status}`)
const bodyBytes = Buffer.byteLength(primed.text)

// the bare route: same size of JSON body, nothing else
const bare = Fastify({ logger: false })
const filler = "x".repeat(Math.max(0, bodyBytes - JSON.stringify({ data: "" }).length))
bare.post("/bare", async () => ({ data: filler }))
await bare.listen({ port: 0, host: "127.0.0.1" })
const bareAddress = bare.server.address()
const barePort = typeof bareAddress === "object" && bareAddress !== null ? bareAddress.port : 0
const bareCheck = await (await fetch(`http://127.0.0.1:${barePort}/bare`, { method: "POST" })).text()

const run = (url: string, headers: Record<string, string>) =>
  autocannon({ url, method: "POST", headers, connections, duration: seconds, pipelining: 1 })

// warm up both, then measure both in this one run
await run(`${broker.url}${tokenPath}`, { authorization }).then(() => undefined)
const brokerResult = await run(`${broker.url}${tokenPath}`, { authorization })
await run(`http://127.0.0.1:${barePort}/bare`, {}).then(() => undefined)
const bareResult = await run(`http://127.0.0.1:${barePort}/bare`, {})

await bare.close()
await broker.close()
await idp.close()
await rm(dir, { recursive: true, force: true })

const failures = brokerResult.non2xx + brokerResult.errors + bareResult.non2xx + bareResult.errors
const summary = {
  name: "broker-http-background-token-cache-hit",
  seconds,
  connections,
  bodyBytes: { broker: bodyBytes, bare: Buffer.byteLength(bareCheck) },
  broker: {
    rps: brokerResult.requests.average,
    p99ms: brokerResult.latency.p99,
    requests: brokerResult.requests.total
  },
  bare: {
    rps: bareResult.requests.average,
    p99ms: bareResult.latency.p99,
    requests: bareResult.requests.total
  },
  ratio: brokerResult.requests.average / bareResult.requests.average,
  failures
}
console.log(`
background token (cache hit)  ${summary.broker.rps.toFixed(0).padStart(8)} req/s   p99 ${summary.broker.p99ms} ms   (${bodyBytes} B body)
bare fastify, same body size  ${summary.bare.rps.toFixed(0).padStart(8)} req/s   p99 ${summary.bare.p99ms} ms   (${summary.bodyBytes.bare} B body)
ratio broker / bare           ${summary.ratio.toFixed(2)}   (${connections} connections, ${seconds} s each, one process)
`)
console.log(`BENCH_JSON ${JSON.stringify(summary)}`)
if (failures > 0) {
  console.error(`${failures} requests failed`)
  process.exit(1)
}
