import { Command, Options } from "@effect/cli"
import { Effect, Option } from "effect"
import { configPath } from "../internal/ConfigPath.js"
import { lazy } from "../internal/Lazy.js"
import * as Shared from "../internal/Options.js"

export const token = Command.make(
  "token",
  {
    config: Shared.config,
    json: Shared.json,
    tenant: Shared.tenant,
    subject: Shared.subject,
    provider: Shared.provider,
    scopes: Shared.scopes,
    minTtl: Options.integer("min-ttl").pipe(
      Options.withDescription(
        "Seconds the token must still be valid for (a fresher one is obtained otherwise)"
      ),
      Options.optional
    )
  },
  (args) =>
    Effect.flatMap(configPath(args.config), (path) =>
      Effect.flatMap(
        lazy(() => import("../actions/token.js")),
        (action) =>
          action.token({
            path,
            json: args.json,
            tenant: Option.getOrUndefined(args.tenant),
            subject: args.subject,
            provider: args.provider,
            scopes: Shared.splitScopes(args.scopes),
            minTtlSeconds: Option.getOrUndefined(args.minTtl)
          })
      )
    )
).pipe(
  Command.withDescription(
    "Print an access token for a user and provider on stdout, and nothing else (details with --json): ACCESS_TOKEN=$(token-broker token -s u-alice -p nextcloud)"
  )
)
