#!/usr/bin/env node
// The `token-broker-mcp` executable: reads the config (path from --config or TOKEN_BROKER_CONFIG), starts the
// MCP server and follows the config file's key ring; the only place of the MCP server that reads process.env.
import { parseArgs } from "node:util"
import { EntryPoint } from "@token-broker/server-kit"
import { startMcpServer } from "./McpServer.js"

const { values } = parseArgs({
  options: { config: { type: "string", short: "c" }, help: { type: "boolean", short: "h" } }
})

if (values.help === true) {
  console.log(`Usage: token-broker-mcp [--config token-broker.yaml]   start the MCP server (Streamable HTTP)

The config path may also come from TOKEN_BROKER_CONFIG. It is the broker's config file with an
mcpServer section; secrets come from the environment variables the file names. With the broker in this
process, its local key ring is reloaded from the file whenever it changes and on SIGHUP.`)
  process.exit(0)
}

const path = values.config ?? process.env.TOKEN_BROKER_CONFIG ?? "token-broker.yaml"
const config = await EntryPoint.loadConfigOrExit("mcp-server", path, process.env)
const server = await EntryPoint.startedOrExit("mcp-server", startMcpServer(config))
console.error(
  `mcp-server: MCP endpoint ${server.mcpUrl} (listening on ${server.url}, token source: ${server.tokenSource})`
)

// the in-process broker writes under the key that `keys rotate` made current, without a restart
const run = server.runWithKeyRing
const keys =
  run === undefined
    ? undefined
    : EntryPoint.followKeyRingLogged({ path, env: process.env, run, logger: server.logger })
process.on("SIGHUP", () => void keys?.reload())

const shutdown = () => {
  keys?.close()
  server.close().then(
    () => process.exit(0),
    () => process.exit(1)
  )
}
process.once("SIGINT", shutdown)
process.once("SIGTERM", shutdown)
