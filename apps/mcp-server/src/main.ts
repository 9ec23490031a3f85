#!/usr/bin/env node
import { parseArgs } from "node:util"
import { describeKeyRingReload, followKeyRing, loadConfig } from "@token-broker/config"
import { Cause, Effect, Exit } from "effect"
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
const loaded = await Effect.runPromiseExit(loadConfig({ path, env: process.env }))
if (Exit.isFailure(loaded)) {
  const error = Cause.squash(loaded.cause) as { field?: string; message?: string }
  console.error(
    `mcp-server: invalid configuration (${error.field ?? "?"}): ${error.message ?? String(error)}`
  )
  process.exit(2)
}

const server = await startMcpServer(loaded.value).catch((error: unknown) => {
  const e = error as { _tag?: string; field?: string; message?: string }
  console.error(
    `mcp-server: cannot start${e._tag === undefined ? "" : ` (${e._tag}${e.field === undefined ? "" : ` ${e.field}`})`}: ${e.message ?? String(error)}`
  )
  process.exit(1)
})
console.error(
  `mcp-server: MCP endpoint ${server.mcpUrl} (listening on ${server.url}, token source: ${server.tokenSource})`
)

// the in-process broker writes under the key that `keys rotate` made current, without a restart
const run = server.runWithKeyRing
const keys =
  run === undefined
    ? undefined
    : followKeyRing({
        path,
        env: process.env,
        run,
        onReload: (outcome) => {
          const { level, fields, message } = describeKeyRingReload(outcome)
          server.logger[level](fields, message)
        },
        onError: (error) =>
          server.logger.error(
            { field: error.field },
            `the config file changed but does not load (${error.message}); the key ring keeps the keys it had`
          )
      })
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
