/** The `keys` command and its subcommands; their implementations (actions/keys.ts) load on demand. */
import { Args, Command, Options } from "@effect/cli"
import { Option } from "effect"
import { reportCommand, withAction } from "../internal/Handler.js"
import * as Shared from "../internal/Options.js"

const load = () => import("../actions/keys.js")

const list = reportCommand(
  "list",
  "List the configured keys, which one is current, and how many grants use each",
  () => load().then((m) => m.list)
)

const add = Command.make(
  "add",
  {
    config: Shared.config,
    kid: Options.text("kid").pipe(
      Options.withDescription("The new key's id (default: the next k<n>)"),
      Options.optional
    ),
    makeCurrent: Options.boolean("make-current").pipe(
      Options.withDescription("Encrypt new data under the new key at once (keys rotate also does this)")
    ),
    env: Options.text("env").pipe(
      Options.withDescription(
        "Keep the key in this environment variable instead of a file: prints `export NAME=...` to set"
      ),
      Options.optional
    )
  },
  withAction(load, (action, path, args) =>
    action.add({
      path,
      kid: Option.getOrUndefined(args.kid),
      makeCurrent: args.makeCurrent,
      env: Option.getOrUndefined(args.env)
    })
  )
).pipe(
  Command.withDescription(
    "Generate a new encryption key (a file with mode 0600 beside the config, or an environment variable) and add it to the config's key list"
  )
)

const rotate = Command.make(
  "rotate",
  {
    config: Shared.config,
    json: Shared.json,
    dryRun: Options.boolean("dry-run").pipe(
      Options.withDescription("Count and check what would be re-encrypted; change nothing")
    ),
    pageSize: Options.integer("page-size").pipe(
      Options.withDescription("Grants read per page"),
      Options.withDefault(200)
    )
  },
  withAction(load, (action, path, args) =>
    action.rotate({ path, json: args.json, dryRun: args.dryRun, pageSize: args.pageSize })
  )
).pipe(
  Command.withDescription(
    "Make the newest key current and re-encrypt every grant under it, with progress. Resumable: run it again after an interruption"
  )
)

const retire = Command.make(
  "retire",
  {
    config: Shared.config,
    kid: Args.text({ name: "kid" }).pipe(Args.withDescription("The key id to remove from the config"))
  },
  withAction(load, (action, path, args) => action.retire({ path, kid: args.kid }))
).pipe(
  Command.withDescription(
    "Remove an old key from the config; refused while any grant is still encrypted under it"
  )
)

export const keys = Command.make("keys").pipe(
  Command.withDescription("Manage the encryption keys of stored grants"),
  Command.withSubcommands([list, add, rotate, retire])
)
