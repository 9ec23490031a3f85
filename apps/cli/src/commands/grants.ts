/** The `grants` command and its subcommands; their implementations (actions/grants.ts) load on demand. */
import { Command, Options } from "@effect/cli"
import { Option } from "effect"
import { withAction } from "../internal/Handler.js"
import * as Shared from "../internal/Options.js"

const load = () => import("../actions/grants.js")

const list = Command.make(
  "list",
  {
    config: Shared.config,
    json: Shared.json,
    tenant: Shared.tenant,
    subject: Shared.subject.pipe(Options.optional),
    provider: Shared.provider.pipe(Options.optional),
    status: Options.choice("status", ["active", "reconsent_required"]).pipe(
      Options.withDescription("Only grants with this status"),
      Options.optional
    ),
    limit: Options.integer("limit").pipe(
      Options.withDescription("Grants per page (1-1000)"),
      Options.withDefault(50)
    ),
    cursor: Options.text("cursor").pipe(
      Options.withDescription("Continue after the page that printed this cursor"),
      Options.optional
    ),
    all: Options.boolean("all").pipe(Options.withDescription("Follow every page"))
  },
  withAction(load, (action, path, args) =>
    action.list({
      path,
      json: args.json,
      all: args.all,
      limit: args.limit,
      cursor: Option.getOrNull(args.cursor),
      filter: {
        tenant: Option.getOrUndefined(args.tenant),
        subject: Option.getOrUndefined(args.subject),
        provider: Option.getOrUndefined(args.provider),
        status: Option.getOrUndefined(args.status)
      }
    })
  )
).pipe(Command.withDescription("List grants (metadata only, never a token), a page at a time"))

const show = Command.make(
  "show",
  { config: Shared.config, json: Shared.json, ...Shared.grant },
  withAction(load, (action, path, args) => action.show({ path, json: args.json, ref: Shared.grantOf(args) }))
).pipe(Command.withDescription("Show one grant: status, scopes, expiries, the key it is encrypted under"))

const revoke = Command.make(
  "revoke",
  { config: Shared.config, json: Shared.json, yes: Shared.yes, ...Shared.grant },
  withAction(load, (action, path, args) =>
    action.revoke({ path, json: args.json, yes: args.yes, ref: Shared.grantOf(args) })
  )
).pipe(
  Command.withDescription(
    "Revoke a grant: RFC 7009 revocation at the provider, then removal here (even when the provider fails). Asks first unless --yes"
  )
)

export const grants = Command.make("grants").pipe(
  Command.withDescription("Inspect and revoke stored grants"),
  Command.withSubcommands([list, show, revoke])
)
