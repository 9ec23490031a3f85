/**
 * MCP benchmark: `tools/call notes_list` on the MCP server with a cached upstream token, against the same
 * call on a minimal MCP SDK server with no authentication and the notes list in memory (`bareMcp.ts`).
 * The MCP server does all of its work on every call: it verifies the user's bearer token, takes the
 * upstream token from the broker's cache (in its process by default; with a remote HTTP broker, the
 * token it keeps from the broker's last answer, `tokenSource.cacheTokens`), and calls dev-idp's notes
 * API with it - an upstream HTTP call that the baseline, by its definition, does not make. That call
 * asks for the list as a Nextcloud Notes client does: without the notes' content, and with the entity
 * tag of the list it was last answered for this user (`If-None-Match`), which the API answers 304 -
 * after it checked the token - while the list is unchanged, as it is during the load.
 *
 * Each server runs in a process of its own (the MCP server, the broker and the baseline each from a
 * bundle built now, on plain node as deployed, with a config file), dev-idp in another, and the load
 * generator (`load.ts`, autocannon's API) in a process per measurement; rounds alternate which server
 * goes first, and the ratios are medians of the rounds' ratios with their spread; beside throughput
 * and p99, each server process's CPU time per call (from /proc), which the machine's other work does
 * not move as it moves throughput, and the CPU per call of the processes only the MCP server calls
 * (dev-idp's notes API, the remote broker), which share the machine's two cores with it. Fails when a
 * request fails, an answer is an error, a refresh reaches dev-idp's token endpoint, or the broker's
 * `token_requests_total` counts anything but hits. Prints the figures, then a `BENCH_JSON {...}` line.
 *
 *   pnpm --filter @token-broker/mcp-server bench
 *   (BENCH_SECONDS=5 BENCH_CONNECTIONS=32 BENCH_ROUNDS=5 BENCH_NOTES=20; BENCH_PROFILE=dir writes the
 *   MCP server's and the baseline's CPU profiles there; BENCH_TOKEN_SOURCE=in-process (the MCP
 *   server's default token source) runs the MCP server with the broker in its own process instead, on
 *   the same store - then the check is that dev-idp's token endpoint got no request during the load,
 *   since that broker's counters are not exported; `remote` by default. `pnpm bench` runs both.)
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import { randomBytes } from "node:crypto"
import { rmSync, watch } from "node:fs"
import { mkdtemp, readFile, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { dirname, join, resolve } from "node:path"
import { createInterface } from "node:readline"
import { fileURLToPath } from "node:url"
import { hashSecret } from "@token-broker/config"
import { driveAuthorization, login, spawnDevIdp } from "@token-broker/dev-idp/process"
import { Effect } from "effect"
import { build as esbuild } from "esbuild"
import { bundleScript } from "../../../tooling/bundleApp.mjs"
import { callTool, type Load, load, openSession, type Session } from "./mcpClient.js"

const seconds = Number(process.env.BENCH_SECONDS ?? 5)
const connections = Number(process.env.BENCH_CONNECTIONS ?? 32)
const rounds = Number(process.env.BENCH_ROUNDS ?? 5)
const noteCount = Number(process.env.BENCH_NOTES ?? 20)
const profileDir = process.env.BENCH_PROFILE
const inProcess = process.env.BENCH_TOKEN_SOURCE === "in-process"
/** node's flags that write a server's CPU profile into BENCH_PROFILE, named after the server. */
const profileFlags = (name: string) =>
  profileDir === undefined
    ? []
    : ["--cpu-prof", `--cpu-prof-dir=${profileDir}`, `--cpu-prof-name=${name}.${process.pid}.cpuprofile`]
const here = dirname(fileURLToPath(import.meta.url))
const appDir = join(here, "..")
const brokerDir = resolve(appDir, "../broker")

const children: Array<ChildProcess> = []
const dir = await mkdtemp(join(tmpdir(), "tb-mcp-bench-"))
const PUBLIC_URL = "http://127.0.0.1"
const MCP_AUDIENCE = `${PUBLIC_URL}/mcp`
await writeFile(join(dir, "dev-idp.json"), JSON.stringify({ mcpAudience: MCP_AUDIENCE }))
const idp = await spawnDevIdp({ args: ["--config", join(dir, "dev-idp.json")] })
// whatever ends this process - a failed check included - ends the servers and removes the folder
process.once("exit", () => {
  for (const child of [...children, { pid: idp.pid }]) {
    try {
      if (child.pid !== undefined && child.pid > 0) process.kill(child.pid, "SIGTERM")
    } catch {
      // already gone
    }
  }
  rmSync(dir, { recursive: true, force: true })
})

/**
 * A server of this bench, from its entry point, answering where it listens: read from its output by
 * `ready`, or what `ready` resolves with.
 */
const serve = (
  what: string,
  args: ReadonlyArray<string>,
  cwd: string,
  env: Record<string, string>,
  ready: ((line: string) => string | undefined) | Promise<string>
) =>
  new Promise<string>((resolveUrl, reject) => {
    const fromLine = typeof ready === "function" ? ready : () => undefined
    if (typeof ready !== "function") void ready.then(resolveUrl)
    const child = spawn(process.execPath, [...args], {
      cwd,
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"]
    })
    children.push(child)
    for (const stream of [child.stdout, child.stderr]) {
      createInterface({ input: stream }).on("line", (line) => {
        const url = fromLine(line)
        if (url !== undefined) resolveUrl(url)
        else process.stderr.write(`${what}: ${line}\n`)
      })
    }
    child.once("exit", (code) => reject(new Error(`${what} exited (code ${code}) before it served`)))
  })

// --- the HTTP broker, with the user's grant -------------------------------------------------------
const callerSecret = randomBytes(24).toString("base64url")
const provider = {
  id: "notes",
  issuer: idp.info.issuer,
  allowInsecureRequests: true,
  resource: idp.info.notesAudience,
  scopes: ["notes:read", "notes:write"],
  // consent lands on dev-idp's own page; the bench hands its query to the broker's callback
  redirectUri: `${idp.info.issuer}/__dev/callback`,
  clientId: "token-broker",
  clientAuthentication: { method: "client_secret_basic", clientSecret: { env: "NOTES_SECRET" } }
}
const store = {
  storage: { kind: "sqlite", filename: join(dir, "grants.db") },
  keyRing: { kind: "local", keys: [{ kid: "k1", env: "KEY" }] },
  providers: [provider]
}
const brokerConfig = join(dir, "broker.json")
await writeFile(
  brokerConfig,
  JSON.stringify({
    ...store,
    server: { port: 0, logLevel: "warn", rateLimit: { max: 100_000_000, timeWindow: "1 minute" } },
    callers: [
      {
        id: "mcp-server",
        secretHash: await Effect.runPromise(hashSecret(callerSecret)),
        backgroundTokens: true,
        grants: "manage",
        providers: ["*"],
        subjects: ["*"],
        scopes: ["*"]
      }
    ]
  })
)
const env = {
  KEY: randomBytes(32).toString("base64"),
  NOTES_SECRET: idp.client("token-broker").clientSecret ?? "",
  MCP_CALLER_SECRET: callerSecret
}
const addressFile = join(dir, "broker.address")
const brokerListens = new Promise<string>((resolveListen) => {
  const watcher = watch(dir, (_event, name) => {
    if (name === "broker.address") {
      watcher.close()
      resolveListen(readFile(addressFile, "utf8").then((text) => text.trim()))
    }
  })
})
// the broker as deployed too: its bundle, built from the sources now
const brokerBuilt = spawnSync(process.execPath, ["build.mjs"], { cwd: brokerDir, stdio: "inherit" })
if (brokerBuilt.status !== 0) throw new Error(`the broker's build failed (exit ${brokerBuilt.status})`)
const brokerUrl = await serve(
  "broker",
  ["dist/main.js", "--config", brokerConfig, "--address-file", addressFile],
  brokerDir,
  env,
  brokerListens
)
const brokerPid = children.at(-1)?.pid
const caller = `Basic ${Buffer.from(`mcp-server:${callerSecret}`).toString("base64")}`
const user = idp.info.users[0]
if (user === undefined) throw new Error("dev-idp has no user")
const started = (await (
  await fetch(`${brokerUrl}/v1/grants/${user.sub}/notes/authorize`, {
    method: "POST",
    headers: { authorization: caller, "content-type": "application/json" },
    body: "{}"
  })
).json()) as { authorizationUrl: string }
const callback = await driveAuthorization(started.authorizationUrl, user)
const consent = await fetch(`${brokerUrl}/connect/callback${callback.search}`)
if (consent.status !== 200) throw new Error(`consent failed: ${consent.status}`)

/** The broker's background-token requests: hits, and every other result. */
const counts = async () => {
  let hit = 0
  let other = 0
  for (const line of (await (await fetch(`${brokerUrl}/metrics`)).text()).split("\n")) {
    if (!line.startsWith("token_requests_total{")) continue
    const value = Number(line.split(" ").at(-1))
    if (line.includes('result="hit"')) hit += value
    else other += value
  }
  return { hit, other }
}
/** Every request dev-idp's token endpoint received (a refresh of the in-process broker's included). */
const tokenEndpointRequests = async () =>
  ((await (await fetch(`${idp.info.issuer}/__dev/counters`)).json()) as { total: number }).total

// --- the MCP server, on the broker ------------------------------------------------------------------
const mcpConfig = join(dir, "mcp.json")
await writeFile(
  mcpConfig,
  JSON.stringify({
    ...store,
    // BENCH_TOKEN_SOURCE=in-process: the embedded broker on the same store (no broker hop per call)
    ...(inProcess
      ? {}
      : {
          tokenSource: {
            kind: "remote",
            url: brokerUrl,
            allowInsecureRequests: true,
            clientId: "mcp-server",
            clientSecret: { env: "MCP_CALLER_SECRET" }
          }
        }),
    mcpServer: {
      host: "127.0.0.1",
      port: 0,
      publicUrl: PUBLIC_URL,
      authorizationServer: { issuer: idp.info.issuer, allowInsecureRequests: true },
      notes: { provider: "notes", apiUrl: idp.info.notesApiUrl, allowInsecureRequests: true },
      logLevel: "warn"
    }
  })
)
// the MCP server as it is deployed (`pnpm start`, the bin): the bundle, built from the sources now
const built = spawnSync(process.execPath, ["build.mjs"], { cwd: appDir, stdio: "inherit" })
if (built.status !== 0) throw new Error(`the MCP server's build failed (exit ${built.status})`)
const listening = /listening on (\S+),/
const mcpBase = await serve(
  "mcp-server",
  [...profileFlags("mcp-server"), "dist/main.js", "--config", mcpConfig],
  appDir,
  env,
  (line) => listening.exec(line)?.[1]
)
const mcpUrl = `${mcpBase}/mcp`
const mcpPid = children.at(-1)?.pid
const bearer = `Bearer ${
  (
    await login(idp.info, {
      clientId: "mcp-client",
      username: user.username,
      password: user.password,
      scopes: ["openid", "mcp:tools", "notes:read", "notes:write"],
      resource: MCP_AUDIENCE
    })
  ).access_token
}`

const mcp = await openSession(mcpUrl, { authorization: bearer })
for (let n = 1; n <= noteCount; n++) {
  await callTool(mcp, "notes_create", {
    title: `Note ${n}`,
    content: `Line one of note ${n}\n\n${"Some text. ".repeat(10)}`,
    category: n % 3 === 0 ? "Work" : "Home",
    favorite: n % 5 === 0
  })
}
const mcpAnswer = await callTool(mcp, "notes_list", {})

// the baseline holds the notes API's own answer for this user in memory
const upstream = (await (
  await fetch(`${brokerUrl}/v1/grants/${user.sub}/notes/token`, {
    method: "POST",
    headers: { authorization: caller }
  })
).json()) as { accessToken: string }
const notesAnswer = await fetch(`${idp.info.notesApiUrl}/notes`, {
  headers: { authorization: `Bearer ${upstream.accessToken}` }
})
if (!notesAnswer.ok) throw new Error(`the notes API answered ${notesAnswer.status}`)
const notesFile = join(dir, "notes.json")
await writeFile(notesFile, await notesAnswer.text())
// the baseline bundled by the same esbuild and run on plain node, like the MCP server (tsx's loader
// alone costs a server 7-20 % of its CPU per request)
await bundleScript(esbuild, join(here, "bareMcp.ts"), join(dir, "bareMcp.mjs"))
const bareUrl = await serve(
  "bare MCP server",
  [...profileFlags("bare"), join(dir, "bareMcp.mjs")],
  appDir,
  { BENCH_NOTES_FILE: notesFile },
  (line) => (line.startsWith("http://") ? line : undefined)
)
const barePid = children.at(-1)?.pid
const bare = await openSession(bareUrl, {})
const bareAnswer = await callTool(bare, "notes_list", {})
if (JSON.stringify(bareAnswer.message.result) !== JSON.stringify(mcpAnswer.message.result)) {
  throw new Error("the baseline's notes_list answer differs from the MCP server's")
}

const median = (values: ReadonlyArray<number>) => {
  const sorted = [...values].sort((a, b) => a - b)
  const half = sorted.length / 2
  return Number.isInteger(half)
    ? ((sorted[half - 1] ?? Number.NaN) + (sorted[half] ?? Number.NaN)) / 2
    : (sorted[Math.floor(half)] ?? Number.NaN)
}
const range = (values: ReadonlyArray<number>) => [Math.min(...values), Math.max(...values)]

/**
 * CPU time (user + system, in ms at 100 ticks a second) a process has used, from /proc (Linux; NaN
 * elsewhere): the server's own cost of a call, which other work on the machine does not change.
 */
const cpuMs = async (pid: number | undefined) => {
  const fields = await readFile(`/proc/${pid}/stat`, "utf8").then(
    (stat) => stat.slice(stat.lastIndexOf(")") + 2).split(" "),
    () => []
  )
  return (Number(fields[11]) + Number(fields[12])) * 10
}
type Measured = Load & {
  readonly cpuMsPerCall: number
  /** dev-idp's and the broker's CPU per call during the run (the broker's is ~0 when in-process) */
  readonly devIdpMsPerCall: number
  readonly brokerMsPerCall: number
}
const measure = async (session: Session, pid: number | undefined, duration: number): Promise<Measured> => {
  const pids = [pid, idp.pid, brokerPid]
  const before = await Promise.all(pids.map(cpuMs))
  const result = await load(session, duration, connections)
  const [own, devIdp, broker] = (await Promise.all(pids.map(cpuMs))).map(
    (after, index) => (after - (before[index] ?? 0)) / Math.max(1, result.requests)
  )
  return {
    ...result,
    cpuMsPerCall: own ?? Number.NaN,
    devIdpMsPerCall: devIdp ?? Number.NaN,
    brokerMsPerCall: broker ?? Number.NaN
  }
}

// warm-up of each, then alternating rounds (the MCP server first in even rounds)
const before = await counts()
const tokenEndpointBefore = await tokenEndpointRequests()
let answered = (await load(mcp, 2, connections)).requests
await load(bare, 2, connections)
const measured: Array<{ readonly mcp: Measured; readonly bare: Measured }> = []
for (let round = 0; round < rounds; round++) {
  const mcpFirst = round % 2 === 0
  const first = mcpFirst ? await measure(mcp, mcpPid, seconds) : await measure(bare, barePid, seconds)
  const second = mcpFirst ? await measure(bare, barePid, seconds) : await measure(mcp, mcpPid, seconds)
  const pair = mcpFirst ? { mcp: first, bare: second } : { mcp: second, bare: first }
  answered += pair.mcp.requests
  measured.push(pair)
}
const after = await counts()
const tokenEndpointCalls = (await tokenEndpointRequests()) - tokenEndpointBefore
const hitsCounted = after.hit - before.hit
const notHits = after.other - before.other
const failed = measured.flatMap((m) => [m.mcp, m.bare]).filter((m) => m.failures > 0)
if (failed.length > 0) {
  const failures = failed.reduce((n, m) => n + m.failures, 0)
  throw new Error(
    `${failures} requests failed or answered an error, e.g. ${failed[0]?.sample ?? "(no answer)"}`
  )
}
// Every call was served a cached token: no refresh reached dev-idp's token endpoint, and the HTTP
// broker answered nothing but hits - none at all with the in-process broker (its counters live in the
// MCP server's process); with the remote one, only when the MCP server's kept token was due
// (tokenSource.cacheTokens), so usually none during the load either.
if (tokenEndpointCalls > 0 || notHits > 0 || (inProcess && hitsCounted > 0)) {
  throw new Error(
    `${answered} calls answered, but dev-idp's token endpoint got ${tokenEndpointCalls} requests, and the HTTP broker counted ${hitsCounted} cache hits and ${notHits} other results`
  )
}

await Promise.all(
  children.map(
    (child) =>
      new Promise((done) => {
        if (child.exitCode !== null || child.signalCode !== null) return done(undefined)
        child.once("exit", done)
        child.kill("SIGTERM")
      })
  )
)
await idp.close()

const rpsRatios = measured.map((m) => m.mcp.rps / m.bare.rps)
const p99Ratios = measured.map((m) => m.mcp.p99ms / Math.max(1, m.bare.p99ms))
const cpuRatios = measured.map((m) => m.mcp.cpuMsPerCall / m.bare.cpuMsPerCall)
const side = (pick: (m: (typeof measured)[number]) => Measured) => ({
  rps: median(measured.map((m) => pick(m).rps)),
  cpuMsPerCall: median(measured.map((m) => pick(m).cpuMsPerCall)),
  devIdpMsPerCall: median(measured.map((m) => pick(m).devIdpMsPerCall)),
  brokerMsPerCall: median(measured.map((m) => pick(m).brokerMsPerCall)),
  p99ms: median(measured.map((m) => pick(m).p99ms)),
  requests: measured.reduce((n, m) => n + pick(m).requests, 0)
})
const summary = {
  name: "mcp-server-tools-call",
  tool: "notes_list",
  seconds,
  connections,
  rounds,
  notes: noteCount,
  tokenSource: inProcess ? "in-process" : "remote",
  processes: "MCP server, broker, bare MCP server, dev-idp and each load run in processes of their own",
  bodyBytes: { mcp: mcpAnswer.bytes, bare: bareAnswer.bytes },
  mcp: side((m) => m.mcp),
  bare: side((m) => m.bare),
  ratio: median(rpsRatios),
  ratioSpread: range(rpsRatios),
  p99Ratio: median(p99Ratios),
  p99RatioSpread: range(p99Ratios),
  cpuRatio: median(cpuRatios),
  cpuRatioSpread: range(cpuRatios),
  hits: { answered, counted: hitsCounted, notHits, tokenEndpointCalls }
}
const f2 = (v: number) => v.toFixed(2)
console.log(`
notes_list on the MCP server      ${summary.mcp.rps.toFixed(0).padStart(8)} req/s   p99 ${summary.mcp.p99ms} ms   (${mcpAnswer.bytes} B answer)
notes_list on a bare SDK server   ${summary.bare.rps.toFixed(0).padStart(8)} req/s   p99 ${summary.bare.p99ms} ms   (${bareAnswer.bytes} B answer)
ratio MCP server / bare           ${f2(summary.ratio)} (rounds ${summary.ratioSpread.map(f2).join("-")}), p99 ${f2(summary.p99Ratio)} (rounds ${summary.p99RatioSpread.map(f2).join("-")})
CPU per call (server process)     ${f2(summary.mcp.cpuMsPerCall)} ms vs ${f2(summary.bare.cpuMsPerCall)} ms: ${f2(summary.cpuRatio)} (rounds ${summary.cpuRatioSpread.map(f2).join("-")})
CPU per call elsewhere            dev-idp ${f2(summary.mcp.devIdpMsPerCall)} ms, broker ${f2(summary.mcp.brokerMsPerCall)} ms (the baseline calls neither)
median of ${rounds} alternating rounds, ${connections} connections, ${seconds} s each; ${answered} calls, ${tokenEndpointCalls} token endpoint requests, ${hitsCounted} requests at the HTTP broker (${inProcess ? "in-process broker" : "remote broker, its tokens kept by the MCP server"})
`)
console.log(`BENCH_JSON ${JSON.stringify(summary)}`)
