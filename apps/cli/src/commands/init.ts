/** The `init` command's options; its implementation (actions/init.ts) loads on demand. */
import { Command, Options } from "@effect/cli"
import { withAction } from "../internal/Handler.js"
import * as Shared from "../internal/Options.js"

/** A text option with a description and a default, as every `init` answer is. */
const answer = (name: string, description: string, fallback: string) =>
  Options.text(name).pipe(Options.withDescription(description), Options.withDefault(fallback))

const storage = Options.choice("storage", ["sqlite", "postgres", "mysql"]).pipe(
  Options.withDescription(
    "Where grants are stored: a SQLite file beside the config, PostgreSQL ($DATABASE_URL) or MariaDB ($MARIADB_URL)"
  ),
  Options.withDefault("sqlite" as const)
)
const providerId = answer("provider", "The first provider's id", "dev-idp")
const issuer = answer(
  "issuer",
  "The first provider's issuer URL (default: dev-idp on this machine)",
  "http://127.0.0.1:9090"
)
const clientId = answer("client-id", "The client id the provider registered for the broker", "token-broker")
const clientSecretEnv = answer(
  "client-secret-env",
  "The environment variable that will hold the client secret",
  "PROVIDER_CLIENT_SECRET"
)

export const init = Command.make(
  "init",
  { config: Shared.config, storage, providerId, issuer, clientId, clientSecretEnv },
  withAction(
    () => import("../actions/init.js"),
    (action, path, args) => action.init({ ...args, path })
  )
).pipe(
  Command.withDescription(
    "Write a starter config file and a new encryption key (both mode 0600). Refuses to overwrite existing files."
  )
)
