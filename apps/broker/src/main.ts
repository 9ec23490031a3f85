#!/usr/bin/env node
// The `token-broker-server` executable: reads the config (--config or TOKEN_BROKER_CONFIG), starts the
// HTTP broker, writes its address file when asked and follows the config file's key ring (with demo.ts,
// the only places of the HTTP broker that read process.env).
import { rename, writeFile } from "node:fs/promises"
import { parseArgs } from "node:util"
import { EntryPoint } from "@token-broker/server-kit"
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
const config = await EntryPoint.loadConfigOrExit("broker", path, process.env)
const broker = await EntryPoint.startedOrExit("broker", startBroker(config))

// `keys rotate` makes another key current in this file: new secrets go under it without a restart.
// Followed before the address file is written, so a change made once the address is known is seen.
const keys = EntryPoint.followKeyRingLogged({
  path,
  env: process.env,
  run: broker.runWithKeyRing,
  logger: broker.logger
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
