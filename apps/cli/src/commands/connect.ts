/** The `connect` command's options; its implementation (actions/connect.ts) loads on demand. */
import { Command, Options } from "@effect/cli"
import { withAction } from "../internal/Handler.js"
import * as Shared from "../internal/Options.js"

export const connect = Command.make(
  "connect",
  {
    ...Shared.tokenRequest,
    host: Options.text("host").pipe(
      Options.withDescription("The loopback address the callback is received on"),
      Options.withDefault("127.0.0.1")
    ),
    port: Options.integer("port").pipe(
      Options.withDescription(
        "The callback port (default: a free one). The provider must allow http://<host>:<port>/callback as a redirect URI"
      ),
      Options.withDefault(0)
    ),
    browser: Options.boolean("browser", { ifPresent: true, negationNames: ["no-browser"] }).pipe(
      Options.withDescription("Open the URL in a browser when on a terminal (--no-browser: only print it)"),
      Options.withDefault(true)
    ),
    timeout: Options.integer("timeout").pipe(
      Options.withDescription("Seconds to wait for the consent"),
      Options.withDefault(300)
    )
  },
  withAction(
    () => import("../actions/connect.js"),
    (action, path, args) =>
      action.connect({
        ...Shared.tokenRequestOf(path, args),
        host: args.host,
        port: args.port,
        browser: args.browser,
        timeoutSeconds: args.timeout
      })
  )
).pipe(
  Command.withDescription(
    "Consent from a terminal: prints (and on a terminal opens) the provider's authorization URL, receives the callback on a loopback port and stores the grant"
  )
)
