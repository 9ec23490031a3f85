import { Command, Options } from "@effect/cli"
import { Effect } from "effect"
import { configPath } from "../internal/ConfigPath.js"
import { lazy } from "../internal/Lazy.js"
import * as Shared from "../internal/Options.js"

const storage = Options.choice("storage", ["sqlite", "postgres", "mysql"]).pipe(
  Options.withDescription(
    "Where grants are stored: a SQLite file beside the config, PostgreSQL ($DATABASE_URL) or MariaDB ($MARIADB_URL)"
  ),
  Options.withDefault("sqlite" as const)
)
const providerId = Options.text("provider").pipe(
  Options.withDescription("The first provider's id"),
  Options.withDefault("dev-idp")
)
const issuer = Options.text("issuer").pipe(
  Options.withDescription("The first provider's issuer URL (default: dev-idp on this machine)"),
  Options.withDefault("http://127.0.0.1:9090")
)
const clientId = Options.text("client-id").pipe(
  Options.withDescription("The client id the provider registered for the broker"),
  Options.withDefault("token-broker")
)
const clientSecretEnv = Options.text("client-secret-env").pipe(
  Options.withDescription("The environment variable that will hold the client secret"),
  Options.withDefault("PROVIDER_CLIENT_SECRET")
)

export const init = Command.make(
  "init",
  { config: Shared.config, storage, providerId, issuer, clientId, clientSecretEnv },
  (args) =>
    Effect.flatMap(configPath(args.config), (path) =>
      Effect.flatMap(
        lazy(() => import("../actions/init.js")),
        (action) => action.init({ ...args, path })
      )
    )
).pipe(
  Command.withDescription(
    "Write a starter config file and a new encryption key (both mode 0600). Refuses to overwrite existing files."
  )
)
