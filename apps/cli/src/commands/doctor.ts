import { Command } from "@effect/cli"
import { withAction } from "../internal/Handler.js"
import * as Shared from "../internal/Options.js"

export const doctor = Command.make(
  "doctor",
  { config: Shared.config, json: Shared.json },
  withAction(
    () => import("../actions/doctor.js"),
    (action, path, args) => action.doctor({ path, json: args.json })
  )
).pipe(
  Command.withDescription(
    "Check the config, storage connectivity and migrations, the keys against stored grants, every provider's discovery and the clock; print what is wrong and how to fix it. Exits 1 when a check fails"
  )
)
