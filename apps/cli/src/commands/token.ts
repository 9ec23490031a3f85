/** The `token` command's options; its implementation (actions/token.ts) loads on demand. */
import { Command, Options } from "@effect/cli"
import { Option } from "effect"
import { withAction } from "../internal/Handler.js"
import * as Shared from "../internal/Options.js"

export const token = Command.make(
  "token",
  {
    ...Shared.tokenRequest,
    minTtl: Options.integer("min-ttl").pipe(
      Options.withDescription(
        "Seconds the token must still be valid for (a fresher one is obtained otherwise)"
      ),
      Options.optional
    )
  },
  withAction(
    () => import("../actions/token.js"),
    (action, path, args) =>
      action.token({
        ...Shared.tokenRequestOf(path, args),
        minTtlSeconds: Option.getOrUndefined(args.minTtl)
      })
  )
).pipe(
  Command.withDescription(
    "Print an access token for a user and provider on stdout, and nothing else (details with --json): ACCESS_TOKEN=$(token-broker token -s u-alice -p nextcloud)"
  )
)
