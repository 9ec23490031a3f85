/**
 * HTTP benchmark: the background-token route on a cache hit (authentication, policy, validation, the
 * in-process cache, JSON) and the RFC 8693 exchange at /oauth/token on a cached session token (the form
 * body, the subject token's verification, the session cache), each against a bare fastify route
 * answering a JSON body of the same size. Each
 * server runs in a process of its own (the broker from its built bundle, as deployed, and a config file;
 * the bare server bundled the same way), dev-idp in another, and the load generator (autocannon's command line) in a process per measurement; rounds
 * alternate the two servers, and the ratios are medians of the rounds' ratios with their spread. Fails
 * when a request fails or when a request was not a cache hit (the broker's own hit counter must grow by
 * every request sent). Prints the figures, then a `BENCH_JSON {...}` line.
 *
 *   pnpm --filter @token-broker/broker-app bench
 *   (BENCH_SECONDS=5 BENCH_CONNECTIONS=32 BENCH_ROUNDS=3)
 *   BENCH_PROFILE=dir: the broker runs with --cpu-prof (its profile is written in dir as it exits), and
 *   where its time went during each route's measured rounds is printed (bench/cpuProfile.ts)
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import { randomBytes } from "node:crypto"
import { rmSync, watch } from "node:fs"
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { createInterface } from "node:readline"
import { fileURLToPath } from "node:url"
import { hashSecret } from "@token-broker/config"
import { driveAuthorization, login, spawnDevIdp } from "@token-broker/dev-idp/process"
import { Effect } from "effect"
import { build as esbuild } from "esbuild"
import { bundleScript } from "../../../tooling/bundleApp.mjs"
import { autocannon, cpuMicros, type Load, median, spread } from "./autocannon.js"
import { nowMicros, profileSummary, type Windows } from "./cpuProfile.js"

const seconds = Number(process.env.BENCH_SECONDS ?? 5)
const connections = Number(process.env.BENCH_CONNECTIONS ?? 32)

const rounds = Number(process.env.BENCH_ROUNDS ?? 3)
const profileDir = process.env.BENCH_PROFILE
const cpuProf = (folder: string) =>
  profileDir === undefined ? [] : ["--cpu-prof", `--cpu-prof-dir=${join(profileDir, folder)}`]
const here = dirname(fileURLToPath(import.meta.url))
const appDir = join(here, "..")

const children: Array<ChildProcess> = []
const stop = async (child: ChildProcess) => {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((resolve) => child.once("exit", resolve))
  child.kill("SIGTERM")
  await exited
}
const firstLine = (child: ChildProcess, what: string) =>
  new Promise<string>((resolve, reject) => {
    if (child.stdout === null) return reject(new Error(`${what} has no stdout`))
    createInterface({ input: child.stdout }).once("line", resolve)
    child.once("exit", (code) => reject(new Error(`${what} exited (code ${code}) before it served`)))
  })

const dir = await mkdtemp(join(tmpdir(), "tb-bench-"))
const MCP_AUDIENCE = "http://127.0.0.1/mcp"
await writeFile(join(dir, "dev-idp.json"), JSON.stringify({ mcpAudience: MCP_AUDIENCE }))
const idp = await spawnDevIdp({ args: ["--config", join(dir, "dev-idp.json")] })
// whatever ends this process - a failed check included - ends the servers and removes the folder that
// holds the config, the database and the subject token's body file
process.once("exit", () => {
  for (const child of children) if (child.exitCode === null) child.kill("SIGTERM")
  if (idp.pid > 0) {
    try {
      process.kill(idp.pid, "SIGTERM")
    } catch {
      // already gone
    }
  }
  rmSync(dir, { recursive: true, force: true })
})
const secret = randomBytes(24).toString("base64url")
const configPath = join(dir, "token-broker.json")
await writeFile(
  configPath,
  JSON.stringify({
    server: { port: 0, logLevel: "warn", rateLimit: { max: 100_000_000, timeWindow: "1 minute" } },
    storage: { kind: "sqlite", filename: join(dir, "grants.db") },
    keyRing: { kind: "local", keys: [{ kid: "k1", env: "KEY" }] },
    providers: [
      {
        id: "notes",
        issuer: idp.info.issuer,
        clientId: "token-broker",
        clientAuthentication: { method: "client_secret_basic", clientSecret: { env: "NOTES_SECRET" } },
        redirectUri: `${idp.info.issuer}/__dev/callback`,
        scopes: ["notes:read", "notes:write"],
        resource: idp.info.notesAudience,
        allowInsecureRequests: true,
        tokenExchange: {}
      }
    ],
    sessionTokens: {
      audience: MCP_AUDIENCE,
      issuers: [{ issuer: idp.info.issuer }],
      allowInsecureRequests: true
    },
    callers: [
      {
        id: "bench",
        secretHash: await Effect.runPromise(hashSecret(secret)),
        providers: ["*"],
        subjects: ["*"],
        scopes: ["*"],
        backgroundTokens: true,
        tokenExchange: true,
        subjectTokens: { clientIds: ["mcp-client"] },
        grants: "manage"
      }
    ]
  })
)

// Both servers run as deployed: the broker from the bundle its build makes (`pnpm start`, the bin: built
// from the sources now), the bare server bundled by the same esbuild, each on plain node. tsx's loader
// costs a server 7-20 % of its CPU per request (measured on each); with BENCH_PROFILE both run through tsx
// instead, whose positions the profile summary maps back to the sources.
const viaTsx = profileDir !== undefined
if (!viaTsx) {
  const built = spawnSync(process.execPath, ["build.mjs"], { cwd: appDir, stdio: "inherit" })
  if (built.status !== 0) throw new Error(`the broker's build failed (exit ${built.status})`)
  await bundleScript(esbuild, join(here, "bare.ts"), join(dir, "bare.mjs"))
}
const brokerEntry = viaTsx ? ["--import", "tsx", "src/main.ts"] : ["dist/main.js"]
const bareEntry = viaTsx ? ["--import", "tsx", join(here, "bare.ts")] : [join(dir, "bare.mjs")]

// The broker from its entry point; its address arrives in the address file once it listens.
const addressFile = join(dir, "address")
const addressWritten = new Promise<void>((resolve) => {
  const watcher = watch(dir, (_event, name) => {
    if (name === "address") {
      watcher.close()
      resolve()
    }
  })
})
const broker = spawn(
  process.execPath,
  [...cpuProf("broker"), ...brokerEntry, "--config", configPath, "--address-file", addressFile],
  {
    cwd: appDir,
    env: {
      ...process.env,
      KEY: randomBytes(32).toString("base64"),
      NOTES_SECRET: idp.client("token-broker").clientSecret ?? ""
    },
    stdio: ["ignore", "inherit", "inherit"]
  }
)
children.push(broker)
await Promise.race([
  addressWritten,
  new Promise((_, reject) =>
    broker.once("exit", (code) => reject(new Error(`the broker exited (code ${code})`)))
  )
])
const brokerUrl = (await readFile(addressFile, "utf8")).trim()
const authorization = `Basic ${Buffer.from(`bench:${secret}`).toString("base64")}`
const user = idp.info.users[0]
if (user === undefined) throw new Error("dev-idp has no user")

// connect the user: authorize -> dev-idp's login/consent over HTTP -> the broker's callback
const started = (await (
  await fetch(`${brokerUrl}/v1/grants/${user.sub}/notes/authorize`, {
    method: "POST",
    headers: { authorization, "content-type": "application/json" },
    body: "{}"
  })
).json()) as { authorizationUrl: string }
const callback = await driveAuthorization(started.authorizationUrl, {
  username: user.username,
  password: user.password
})
const consent = await fetch(`${brokerUrl}/connect/callback${callback.search}`)
if (consent.status !== 200) throw new Error(`consent failed: ${consent.status}`)

const tokenUrl = `${brokerUrl}/v1/grants/${user.sub}/notes/token`
const prime = async () => {
  const response = await fetch(tokenUrl, { method: "POST", headers: { authorization } })
  return { status: response.status, text: await response.text() }
}
await prime()
const primed = await prime()
if (!primed.text.includes('"source":"cache"')) throw new Error(`not a cache hit: ${primed.status}`)
const bodyBytes = Buffer.byteLength(primed.text)

/**
 * The broker's own counts: background-token requests (`token_requests_total`, hits by result="hit") or
 * exchanges (`token_exchange_total`, hits by outcome="cached"); every other result counts as a miss.
 */
const counts = async (metric: "token_requests_total" | "token_exchange_total") => {
  const text = await (await fetch(`${brokerUrl}/metrics`)).text()
  const hitLabel = metric === "token_requests_total" ? 'result="hit"' : 'outcome="cached"'
  let hit = 0
  let other = 0
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${metric}{`)) continue
    const value = Number(line.split(" ").at(-1))
    if (line.includes(hitLabel)) hit += value
    else other += value
  }
  return { hit, other }
}

// a user token for the MCP audience, issued to dev-idp's MCP client: the subject token to exchange
const subjectToken = (
  await login(idp.info, {
    clientId: "mcp-client",
    username: user.username,
    password: user.password,
    scopes: ["openid", "notes:read", "notes:write"],
    resource: MCP_AUDIENCE
  })
).access_token
const exchangeUrl = `${brokerUrl}/oauth/token`
const exchangeBody = new URLSearchParams({
  grant_type: "urn:ietf:params:oauth:grant-type:token-exchange",
  subject_token: subjectToken,
  subject_token_type: "urn:ietf:params:oauth:token-type:access_token",
  audience: "notes"
}).toString()
// autocannon reads the body from a file: the subject token stays off its command line
const exchangeBodyFile = join(dir, "exchange-body")
await writeFile(exchangeBodyFile, exchangeBody, { mode: 0o600 })
const exchangeHeaders = { authorization, "content-type": "application/x-www-form-urlencoded" }
const exchangeOnce = async () => {
  const response = await fetch(exchangeUrl, { method: "POST", headers: exchangeHeaders, body: exchangeBody })
  return { status: response.status, text: await response.text() }
}
const firstExchange = await exchangeOnce()
if (firstExchange.status !== 200) throw new Error(`the exchange failed: ${firstExchange.status}`)
const exchangeBytes = Buffer.byteLength((await exchangeOnce()).text)

/** A bare server answering a body of `bytes`, in a process of its own. */
const startBare = async (bytes: number) => {
  const bare = spawn(process.execPath, [...cpuProf("bare"), ...bareEntry], {
    cwd: appDir,
    env: { ...process.env, BENCH_BODY_BYTES: String(bytes) },
    stdio: ["ignore", "pipe", "inherit"]
  })
  children.push(bare)
  const url = `${await firstLine(bare, "the bare server")}/bare`
  return {
    url,
    pid: bare.pid,
    bytes: Buffer.byteLength(await (await fetch(url, { method: "POST" })).text())
  }
}
const bare = await startBare(bodyBytes)
const bareUrl = bare.url
const bareExchange = await startBare(exchangeBytes)

const load = (url: string, headers: Record<string, string>, duration: number, bodyFile?: string) =>
  autocannon({ connections, url, headers, duration, bodyFile })

/**
 * Alternating rounds of one route against its bare baseline (the route first in even rounds, the bare
 * one first in odd ones), after a warm-up of each; fails unless every request was a cache hit.
 */
const compare = async (
  name: string,
  metric: "token_requests_total" | "token_exchange_total",
  route: (duration: number) => Promise<Load>,
  baseline: (duration: number) => Promise<Load>,
  pids: { readonly broker: number | undefined; readonly bare: number | undefined }
) => {
  const before = await counts(metric)
  let answered = (await route(2)).requests
  await baseline(2)
  const measured: Array<{ broker: Load & { cpu: number }; bare: Load & { cpu: number } }> = []
  // the measured runs' times and requests, for the profiles' summary, and the server's CPU per request
  const timed = async (
    what: string,
    profiles: "broker" | "bare",
    run: (duration: number) => Promise<Load>
  ) => {
    const [start, cpu] = [nowMicros(), await cpuMicros(pids[profiles])]
    const result = await run(seconds)
    windows[what] ??= { profiles, runs: [] }
    windows[what].runs.push({ start, end: nowMicros(), requests: result.requests })
    return { ...result, cpu: ((await cpuMicros(pids[profiles])) - cpu) / Math.max(1, result.requests) }
  }
  const broker = () => timed(name, "broker", route)
  const bare = () => timed(`${name}, bare fastify`, "bare", baseline)
  for (let round = 0; round < rounds; round++) {
    const first = round % 2 === 0 ? await broker() : await bare()
    const second = round % 2 === 0 ? await bare() : await broker()
    const pair = round % 2 === 0 ? { broker: first, bare: second } : { broker: second, bare: first }
    answered += pair.broker.requests
    measured.push(pair)
  }
  const after = await counts(metric)
  // autocannon counts answered requests; one still in flight when a run stops is served but not counted
  const hitsCounted = after.hit - before.hit
  const notHits = after.other - before.other
  const rpsRatios = measured.map((m) => m.broker.rps / m.bare.rps)
  const p99Ratios = measured.map((m) => m.broker.p99ms / Math.max(1, m.bare.p99ms))
  const cpuRatios = measured.map((m) => m.bare.cpu / m.broker.cpu)
  const failures = measured.reduce((n, m) => n + m.broker.failures + m.bare.failures, 0)
  if (failures > 0 || notHits > 0 || hitsCounted < answered) {
    throw new Error(
      failures > 0
        ? `${name}: ${failures} requests failed`
        : `${name}: ${answered} requests answered, but the broker counted ${hitsCounted} cache hits and ${notHits} other results`
    )
  }
  return {
    broker: {
      rps: median(measured.map((m) => m.broker.rps)),
      p99ms: median(measured.map((m) => m.broker.p99ms)),
      cpuMicrosPerRequest: median(measured.map((m) => m.broker.cpu)),
      requests: measured.reduce((n, m) => n + m.broker.requests, 0)
    },
    bare: {
      rps: median(measured.map((m) => m.bare.rps)),
      p99ms: median(measured.map((m) => m.bare.p99ms)),
      cpuMicrosPerRequest: median(measured.map((m) => m.bare.cpu)),
      requests: measured.reduce((n, m) => n + m.bare.requests, 0)
    },
    ratio: median(rpsRatios),
    ratioSpread: spread(rpsRatios),
    p99Ratio: median(p99Ratios),
    p99RatioSpread: spread(p99Ratios),
    /** bare's CPU per request / the broker's: the ratio of req/s where CPU is what limits both */
    cpuRatio: median(cpuRatios),
    cpuRatioSpread: spread(cpuRatios),
    hits: { answered, counted: hitsCounted, notHits }
  }
}

const windows: Windows = {}
const background = await compare(
  "background token",
  "token_requests_total",
  (duration) => load(tokenUrl, { authorization }, duration),
  (duration) => load(bareUrl, {}, duration),
  { broker: broker.pid, bare: bare.pid }
)
const exchange = await compare(
  "token exchange",
  "token_exchange_total",
  (duration) => load(exchangeUrl, exchangeHeaders, duration, exchangeBodyFile),
  (duration) =>
    load(bareExchange.url, { "content-type": exchangeHeaders["content-type"] }, duration, exchangeBodyFile),
  { broker: broker.pid, bare: bareExchange.pid }
)

await Promise.all(children.map(stop))
await idp.close()
if (profileDir !== undefined) {
  await writeFile(join(profileDir, "windows.json"), JSON.stringify(windows))
  console.log(await profileSummary(profileDir))
}
await rm(dir, { recursive: true, force: true })

const summary = {
  name: "broker-http-background-token-cache-hit",
  seconds,
  connections,
  rounds,
  processes: "broker, bare servers, dev-idp and each autocannon run in processes of their own",
  bodyBytes: {
    broker: bodyBytes,
    bare: bare.bytes,
    exchange: exchangeBytes,
    bareExchange: bareExchange.bytes
  },
  ...background,
  exchange
}
const f2 = (v: number) => v.toFixed(2)
const line = (what: string, r: typeof background, bytes: number, bareBytes: number) => `
${what.padEnd(30)}${r.broker.rps.toFixed(0).padStart(8)} req/s   p99 ${r.broker.p99ms} ms   (${bytes} B body)
bare fastify, same body size  ${r.bare.rps.toFixed(0).padStart(8)} req/s   p99 ${r.bare.p99ms} ms   (${bareBytes} B body)
ratio broker / bare           ${f2(r.ratio)} (rounds ${r.ratioSpread.map(f2).join("-")}), p99 ${f2(r.p99Ratio)} (rounds ${r.p99RatioSpread.map(f2).join("-")})
CPU per request               broker ${r.broker.cpuMicrosPerRequest.toFixed(1)} us, bare ${r.bare.cpuMicrosPerRequest.toFixed(1)} us: bare / broker ${f2(r.cpuRatio)} (rounds ${r.cpuRatioSpread.map(f2).join("-")})`
console.log(
  `${line("background token (cache hit)", background, bodyBytes, bare.bytes)}${line("token exchange (cached)", exchange, exchangeBytes, bareExchange.bytes)}
median of ${rounds} alternating rounds, ${connections} connections, ${seconds} s each; each server in its own process
`
)
console.log(`BENCH_JSON ${JSON.stringify(summary)}`)
