import { isAbsolute, resolve } from "node:path"
import { Effect, Option } from "effect"
import { CliEnvironment } from "./Environment.js"

export const DEFAULT_CONFIG_FILE = "token-broker.yaml"

/** The config file: `--config`, else $TOKEN_BROKER_CONFIG, else ./token-broker.yaml (absolute). */
export const configPath = (option: Option.Option<string>): Effect.Effect<string, never, CliEnvironment> =>
  Effect.map(CliEnvironment, (env) => {
    const given = Option.getOrElse(option, () => env.env.TOKEN_BROKER_CONFIG ?? DEFAULT_CONFIG_FILE)
    return isAbsolute(given) ? given : resolve(env.cwd, given)
  })
