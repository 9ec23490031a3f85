import { Command } from "@effect/cli"
import { withAction } from "../internal/Handler.js"
import * as Shared from "../internal/Options.js"

export const migrate = Command.make(
  "migrate",
  { config: Shared.config, json: Shared.json },
  withAction(
    () => import("../actions/migrate.js"),
    (action, path, args) => action.migrate({ path, json: args.json })
  )
).pipe(
  Command.withDescription(
    "Apply the storage's pending schema migrations and say what was done. Safe to run again (a no-op when current)."
  )
)
