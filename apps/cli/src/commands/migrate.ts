import { Command } from "@effect/cli"
import { Effect } from "effect"
import { configPath } from "../internal/ConfigPath.js"
import { lazy } from "../internal/Lazy.js"
import * as Shared from "../internal/Options.js"

export const migrate = Command.make("migrate", { config: Shared.config, json: Shared.json }, (args) =>
  Effect.flatMap(configPath(args.config), (path) =>
    Effect.flatMap(
      lazy(() => import("../actions/migrate.js")),
      (action) => action.migrate({ path, json: args.json })
    )
  )
).pipe(
  Command.withDescription(
    "Apply the storage's pending schema migrations and say what was done. Safe to run again (a no-op when current)."
  )
)
