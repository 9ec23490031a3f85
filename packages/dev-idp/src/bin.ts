/** The `dev-idp` executable: starts the provider from flags or a config file and prints its issuer. */
import { parseArgs } from "node:util"
import { z } from "zod"
import { type DevIdpOptions, loadDevIdpConfigFile, startDevIdp } from "./index.js"

const { values } = parseArgs({
  options: {
    port: { type: "string" },
    host: { type: "string" },
    config: { type: "string" },
    help: { type: "boolean", short: "h" }
  }
})

if (values.help === true) {
  console.log(`Usage: dev-idp [--port 9090] [--host 127.0.0.1] [--config dev-idp.json]

Starts dev-idp, a development-only OpenID Provider with a stand-in notes API.
Environment: DEV_IDP_PORT (same as --port). --port wins over the config file's port.`)
  process.exit(0)
}

const fail = (message: string): never => {
  console.error(`dev-idp: ${message}`)
  process.exit(2)
}
const describe = (error: unknown): string =>
  error instanceof z.ZodError
    ? `\n${z.prettifyError(error)}`
    : error instanceof Error
      ? error.message
      : String(error)

const fromFile: DevIdpOptions =
  values.config === undefined
    ? {}
    : await loadDevIdpConfigFile(values.config).catch((error: unknown) =>
        fail(`invalid config file ${values.config}: ${describe(error)}`)
      )
const portText = values.port ?? process.env.DEV_IDP_PORT
const port = portText === undefined ? (fromFile.port ?? 9090) : Number(portText)
if (!Number.isInteger(port) || port < 0 || port > 65_535) fail(`invalid port ${portText}`)

const idp = await startDevIdp({
  ...fromFile,
  port,
  ...(values.host === undefined ? {} : { host: values.host })
}).catch((error: unknown) => fail(`cannot start: ${describe(error)}`))

const lines = [
  "dev-idp is running (development and tests only - never use it in production)",
  "",
  `  issuer         ${idp.issuer}`,
  `  discovery      ${idp.discoveryUrl}`,
  `  notes API      ${idp.notesApiUrl}   (audience ${idp.notesAudience})`,
  `  opaque tokens  resource=${idp.opaqueAudience}`,
  ...(idp.mcpAudience === undefined ? [] : [`  MCP resource   ${idp.mcpAudience}`]),
  `  test controls  ${idp.issuer}/__dev/info, /__dev/counters, /__dev/faults, /__dev/revocations`,
  "",
  "Clients (secrets and keys are generated for this run and are for development only):",
  ...idp.clients.map((client) => {
    const credential =
      client.clientSecret !== undefined
        ? `secret ${client.clientSecret}`
        : client.privateJwk !== undefined
          ? "private key: GET /__dev/info"
          : "public (PKCE)"
    return `  ${client.clientId.padEnd(20)} ${client.tokenEndpointAuthMethod.padEnd(20)} ${credential}`
  }),
  `  redirect URIs: ${idp.clients[0]?.redirectUris.join(", ") ?? ""}`,
  "",
  "Demo users:",
  ...idp.users.map((user) => `  ${user.username.padEnd(10)} password ${user.password}   (sub ${user.sub})`),
  ""
]
console.log(lines.join("\n"))

const shutdown = (signal: string) => {
  console.log(`dev-idp: ${signal} received, shutting down`)
  idp.close().then(
    () => process.exit(0),
    (error: unknown) => {
      console.error(error)
      process.exit(1)
    }
  )
}
process.once("SIGINT", () => shutdown("SIGINT"))
process.once("SIGTERM", () => shutdown("SIGTERM"))
