#!/usr/bin/env node
import { rename, writeFile } from "node:fs/promises"
import { parseArgs } from "node:util"
import { describeKeyRingReload, followKeyRing, loadConfig } from "@token-broker/config"
import { Cause, Effect, Exit } from "effect"
import { startBroker } from "./Broker.js"

// `pnpm run start -- --config x` passes the "--" through
const argv = process.argv.slice(2)
const { values, positionals } = parseArgs({
  args: argv[0] === "--" ? argv.slice(1) : argv,
  allowPositionals: true,
  options: {
    config: { type: "string", short: "c" },
    "address-file": { type: "string" },
    help: { type: "boolean", short: "h" }
  }
})

if (values.help === true) {
  console.log(`Usage: token-broker-server [--config token-broker.yaml] [--address-file path]   start the HTTP broker

Callers' secret hashes come from the CLI: printf '%s' "$SECRET" | token-broker hash-secret

The config path may also come from TOKEN_BROKER_CONFIG. Secrets come from the environment variables the file names.
The local key ring is reloaded from the file whenever it changes and on SIGHUP (other settings need a restart).
--address-file (or TOKEN_BROKER_ADDRESS_FILE): once listening, write the bound address (e.g.
http://127.0.0.1:41234) and a newline to this file, for server.port 0.`)
  process.exit(0)
}

if (positionals[0] === "hash-secret") {
  console.error(
    `broker: hash-secret moved to the CLI (@token-broker/cli): printf '%s' "$SECRET" | token-broker hash-secret`
  )
  process.exit(2)
}

const path = values.config ?? process.env.TOKEN_BROKER_CONFIG ?? "token-broker.yaml"
const loaded = await Effect.runPromiseExit(loadConfig({ path, env: process.env }))
if (Exit.isFailure(loaded)) {
  const error = Cause.squash(loaded.cause) as { field?: string; message?: string }
  console.error(`broker: invalid configuration (${error.field ?? "?"}): ${error.message ?? String(error)}`)
  process.exit(2)
}

const broker = await startBroker(loaded.value).catch((error: unknown) => {
  const e = error as { _tag?: string; field?: string; message?: string }
  console.error(
    `broker: cannot start${e._tag === undefined ? "" : ` (${e._tag}${e.field === undefined ? "" : ` ${e.field}`})`}: ${e.message ?? String(error)}`
  )
  process.exit(1)
})

// `keys rotate` makes another key current in this file: new secrets go under it without a restart.
// Followed before the address file is written, so a change made once the address is known is seen.
const keys = followKeyRing({
  path,
  env: process.env,
  run: broker.runWithKeyRing,
  onReload: (outcome) => {
    const { level, fields, message } = describeKeyRingReload(outcome)
    broker.logger[level](fields, message)
  },
  onError: (error) =>
    broker.logger.error(
      { field: error.field },
      `the config file changed but does not load (${error.message}); the key ring keeps the keys it had`
    )
})
process.on("SIGHUP", () => void keys.reload())

const addressFile = values["address-file"] ?? process.env.TOKEN_BROKER_ADDRESS_FILE
if (addressFile !== undefined) {
  // written whole, then renamed into place: a reader never sees half an address
  const partial = `${addressFile}.${process.pid}.partial`
  await writeFile(partial, `${broker.url}\n`)
    .then(() => rename(partial, addressFile))
    .catch(async (error: unknown) => {
      console.error(`broker: cannot write the address file ${addressFile}: ${String(error)}`)
      await broker.close()
      process.exit(1)
    })
}

const shutdown = (signal: string) => {
  keys.close()
  broker.logger.info({ signal }, "shutting down: finishing in-flight requests")
  broker.close().then(
    () => process.exit(0),
    () => process.exit(1)
  )
}
process.once("SIGINT", () => shutdown("SIGINT"))
process.once("SIGTERM", () => shutdown("SIGTERM"))
