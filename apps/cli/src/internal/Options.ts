import { Options } from "@effect/cli"
import { Option } from "effect"

/** Options shared by several commands (definitions only: nothing heavy is imported here). */

export const config = Options.text("config").pipe(
  Options.withAlias("c"),
  Options.withDescription(
    "The config file (YAML or JSON). Default: $TOKEN_BROKER_CONFIG, else ./token-broker.yaml"
  ),
  Options.optional
)

export const json = Options.boolean("json").pipe(
  Options.withDescription("Print the result as JSON on stdout")
)

export const subject = Options.text("subject").pipe(
  Options.withAlias("s"),
  Options.withDescription("The user (the grant's subject), e.g. u-alice")
)

export const provider = Options.text("provider").pipe(
  Options.withAlias("p"),
  Options.withDescription("The provider id from the config, e.g. nextcloud")
)

export const tenant = Options.text("tenant").pipe(
  Options.withDescription("The tenant (default: the config's tenant)"),
  Options.optional
)

/** The options that name one grant, in the order the help lists them. */
export const grant = { tenant, subject, provider }

/** The grant named by `--tenant` (default: the config's), `--subject` and `--provider`. */
export const grantOf = (args: {
  readonly tenant: Option.Option<string>
  readonly subject: string
  readonly provider: string
}) => ({ tenant: Option.getOrUndefined(args.tenant), subject: args.subject, provider: args.provider })

export const scopes = Options.text("scope").pipe(
  Options.withDescription("A scope to ask for; repeat it, or give several separated by spaces"),
  Options.repeated
)

export const yes = Options.boolean("yes").pipe(
  Options.withAlias("y"),
  Options.withDescription("Do not ask for confirmation")
)

/** What a command that gets a token for one grant hands its action (connect, token). */
export interface TokenRequest {
  readonly path: string
  readonly json: boolean
  readonly tenant: string | undefined
  readonly subject: string
  readonly provider: string
  /** The `--scope` values as given; the action reads them with `requestedScopes` (core's scope rules). */
  readonly scopes: ReadonlyArray<string>
}

/** The options of such a command, in the order the help lists them. */
export const tokenRequest = { config, json, ...grant, scopes }

export const tokenRequestOf = (
  path: string,
  args: Parameters<typeof grantOf>[0] & { readonly json: boolean; readonly scopes: ReadonlyArray<string> }
): TokenRequest => ({ path, json: args.json, ...grantOf(args), scopes: args.scopes })
