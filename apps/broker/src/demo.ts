/**
 * The one-command demo (`pnpm start` at the repository root): dev-idp, its stand-in notes API and the
 * broker on SQLite, with a generated development key and config under `.data/`. Development only.
 */
import { spawn } from "node:child_process"
import { randomBytes } from "node:crypto"
import { chmod, mkdir, readFile, writeFile } from "node:fs/promises"
import { createServer } from "node:net"
import { dirname, join, relative, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { hashSecret, loadConfig } from "@token-broker/config"
import { KeyRing } from "@token-broker/core"
import { startDevIdp } from "@token-broker/dev-idp"
import { Effect, Redacted } from "effect"
import { startBroker } from "./Broker.js"

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../../..")
const data = join(root, ".data")
await mkdir(data, { recursive: true, mode: 0o700 })

/** A secret kept across runs in a 0600 file under .data/. */
const persistentSecret = async (name: string, make: () => string): Promise<string> => {
  const file = join(data, name)
  const existing = await readFile(file, "utf8").then(
    (text) => text.trim(),
    () => ""
  )
  if (existing.length > 0) {
    await chmod(file, 0o600)
    return existing
  }
  const value = make()
  await writeFile(file, `${value}\n`, { mode: 0o600 })
  return value
}

const portFree = (port: number): Promise<boolean> =>
  new Promise((done) => {
    const server = createServer()
    server.once("error", () => done(false))
    server.listen(port, "127.0.0.1", () => server.close(() => done(true)))
  })

const pickPort = async (preferred: number): Promise<number> => {
  if (await portFree(preferred)) return preferred
  const server = createServer()
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done))
  const address = server.address()
  const port = typeof address === "object" && address !== null ? address.port : 0
  await new Promise<void>((done) => server.close(() => done()))
  return port
}

const brokerPort = await pickPort(8080)
const brokerUrl = `http://127.0.0.1:${brokerPort}`
const idpPort = await pickPort(9090)
const mcpPort = await pickPort(8090)
const mcpUrl = `http://127.0.0.1:${mcpPort}/mcp`
const mcpAudience = mcpUrl

const idp = await startDevIdp({ port: idpPort, redirectUris: [`${brokerUrl}/connect/callback`], mcpAudience })

await persistentSecret("dev-key", () => Redacted.value(KeyRing.generateKeyMaterial()))
const callerId = "demo-agent"
const callerSecret = await persistentSecret("demo-caller-secret", () => randomBytes(24).toString("base64url"))
const callerHash = await Effect.runPromise(hashSecret(callerSecret))

const configPath = join(data, "token-broker.yaml")
const yaml = `# Written by the demo (pnpm start); development only. See apps/broker/README.md for real deployments.
# yaml-language-server: $schema=../packages/config/schema/token-broker.schema.json
server:
  host: 127.0.0.1
  port: ${brokerPort}
  logLevel: warn
storage:
  kind: sqlite
  filename: grants.db
keyRing:
  kind: local
  keys:
    - kid: dev
      file: dev-key
providers:
  - id: notes
    issuer: ${idp.issuer}
    clientId: token-broker
    clientAuthentication:
      method: client_secret_basic
      clientSecret: { env: NOTES_CLIENT_SECRET }
    scopes: [notes:read, notes:write]
    resource: ${idp.notesAudience}
    allowInsecureRequests: true # dev-idp speaks http: local development only
    tokenExchange: {}
sessionTokens:
  audience: ${mcpAudience}
  issuers:
    - issuer: ${idp.issuer}
  allowInsecureRequests: true
mcpServer: # the MCP server (apps/mcp-server): in-process broker on the same SQLite file
  port: ${mcpPort}
  authorizationServer:
    issuer: ${idp.issuer}
    allowInsecureRequests: true
  notes:
    provider: notes
    apiUrl: ${idp.notesApiUrl}
    allowInsecureRequests: true
  logLevel: warn
callers:
  - id: ${callerId}
    secretHash: "${callerHash}"
    providers: ["*"]
    subjects: ["*"]
    scopes: ["*"]
    backgroundTokens: true
    tokenExchange: true
    subjectTokens: { audiences: ["${mcpAudience}"] }
    grants: manage
`
await writeFile(configPath, yaml, { mode: 0o600 })

const env = { ...process.env, NOTES_CLIENT_SECRET: idp.client("token-broker").clientSecret }
const config = await Effect.runPromise(Effect.either(loadConfig({ path: configPath, env })))
if (config._tag === "Left") {
  console.error(`demo: the generated config is invalid (${config.left.field}): ${config.left.message}`)
  await idp.close()
  process.exit(1)
}
const broker = await startBroker(config.right).catch(async (error: unknown) => {
  console.error(`demo: the broker could not start: ${error instanceof Error ? error.message : String(error)}`)
  await idp.close()
  process.exit(1)
})

// The MCP server in its own process (apps never import each other), on the same config and SQLite file.
// Consent it starts lands on the broker's /connect/callback, which finishes it from the shared store.
const mcpMain = resolve(root, "apps/mcp-server/src/main.ts")
const mcp = spawn(process.execPath, [...process.execArgv, mcpMain, "--config", configPath], {
  cwd: dirname(mcpMain),
  env,
  stdio: ["ignore", "inherit", "inherit"]
})
const mcpReady = async () => {
  for (let i = 0; i < 300 && mcp.exitCode === null; i++) {
    const ok = await fetch(`http://127.0.0.1:${mcpPort}/healthz`).then(
      (r) => r.ok,
      () => false
    )
    if (ok) return true
    await new Promise((r) => setTimeout(r, 100))
  }
  return false
}
if (!(await mcpReady())) {
  console.error("demo: the MCP server could not start (see its message above)")
  mcp.kill()
  await broker.close()
  await idp.close()
  process.exit(1)
}

const user = idp.users[0]
if (user === undefined) throw new Error("dev-idp has no demo user")
const auth = Buffer.from(`${callerId}:${callerSecret}`).toString("base64")
const started = await fetch(`${brokerUrl}/v1/grants/${user.sub}/notes/authorize`, {
  method: "POST",
  headers: { authorization: `Basic ${auth}`, "content-type": "application/json" },
  body: "{}"
})
const authorizationUrl = ((await started.json()) as { authorizationUrl?: string }).authorizationUrl ?? ""

const curlAuth = `-u '${callerId}:${callerSecret}'`
const commands = {
  authorize: `curl -s -X POST ${curlAuth} ${brokerUrl}/v1/grants/${user.sub}/notes/authorize`,
  token: `curl -s -X POST ${curlAuth} ${brokerUrl}/v1/grants/${user.sub}/notes/token`,
  grants: `curl -s ${curlAuth} ${brokerUrl}/v1/grants`,
  notes: `curl -s ${idp.notesApiUrl}/notes -H "authorization: Bearer $TOKEN"`,
  revoke: `curl -s -X DELETE ${curlAuth} ${brokerUrl}/v1/grants/${user.sub}/notes`
}
const facts = {
  broker: {
    url: brokerUrl,
    docs: `${brokerUrl}/docs`,
    openapi: `${brokerUrl}/openapi.json`,
    metrics: `${brokerUrl}/metrics`
  },
  devIdp: { issuer: idp.issuer, notesApi: idp.notesApiUrl, notesAudience: idp.notesAudience, mcpAudience },
  mcpServer: {
    url: mcpUrl,
    resourceMetadata: `http://127.0.0.1:${mcpPort}/.well-known/oauth-protected-resource/mcp`,
    tokenSource: "in-process"
  },
  caller: { id: callerId, secret: callerSecret },
  user: { username: user.username, password: user.password, subject: user.sub },
  provider: "notes",
  authorizationUrl,
  commands,
  files: { config: configPath, key: join(data, "dev-key"), database: join(data, "grants.db") }
}
await writeFile(join(data, "demo-stack.json"), `${JSON.stringify(facts, null, 2)}\n`, { mode: 0o600 })

console.log(`
token-broker demo is running (development only: dev-idp, its notes API and the broker on SQLite)

  broker     ${brokerUrl}    API docs ${brokerUrl}/docs
  dev-idp    ${idp.issuer}    notes API ${idp.notesApiUrl}
  demo user  ${user.username} / ${user.password}    (subject ${user.sub})
  caller     ${callerId} / ${callerSecret}

Next steps:
  1. Connect: open this link in a browser, log in as ${user.username} / ${user.password} and approve
     ${authorizationUrl}
     (the link is valid for 10 minutes; a new one: ${commands.authorize})
  2. Get a background token for ${user.sub}:
     ${commands.token}
  3. Use it at the notes API:
     TOKEN=$(${commands.token} | node -pe 'JSON.parse(require("fs").readFileSync(0, "utf8")).accessToken')
     ${commands.notes}

MCP server  ${mcpUrl}  (Streamable HTTP; MCP clients sign in at dev-idp as ${user.username})
  Claude Code:      claude mcp add --transport http token-broker ${mcpUrl}
  MCP Inspector:    npx @modelcontextprotocol/inspector  (transport "Streamable HTTP", URL ${mcpUrl})
  then call notes_list: it answers with a consent link; open it, approve, and call it again.
  More: apps/mcp-server/README.md

Config, key and data: ${relative(root, data)}/ at the repository root (the same facts as JSON: ${relative(root, join(data, "demo-stack.json"))})
Ctrl-C stops everything.
`)

const shutdown = () => {
  mcp.kill("SIGTERM")
  broker
    .close()
    .then(() => idp.close())
    .then(
      () => process.exit(0),
      () => process.exit(1)
    )
}
process.once("SIGINT", shutdown)
process.once("SIGTERM", shutdown)
