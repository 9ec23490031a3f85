import {
  type BrokerServices,
  brokerLayer,
  type Config,
  keyRingLayer,
  loadConfig,
  storeLayer
} from "@token-broker/config"
import { type GrantStore, type KeyRing, Scopes } from "@token-broker/core"
import { Effect, Layer, Redacted } from "effect"
import { DEFAULT_CONFIG_FILE } from "./ConfigPath.js"
import { CliEnvironment } from "./Environment.js"
import { type CliFailure, fromBrokerError, usageError } from "./Failure.js"

/**
 * Loading the config and building the broker's layers for a command. Imported only by command
 * implementations (it pulls in every storage driver).
 */

/**
 * The scopes of `--scope` values (`--scope "a b" --scope c`), read by core's scope rules: sorted, each
 * once; undefined when none is given. A value may hold several lines or tabs (a shell's
 * `"$(cat scopes.txt)"`): any whitespace separates scopes, as the option's help says.
 */
export const requestedScopes = (values: ReadonlyArray<string>): ReadonlyArray<string> | undefined => {
  const scopes = Scopes.split(values.join(" ").replace(/\s/g, " "))
  return scopes.length === 0 ? undefined : scopes
}

/** Reads and validates the config file; a missing or invalid file is a usage error (exit 2). */
export const loadCliConfig = (path: string): Effect.Effect<Config, CliFailure, CliEnvironment> =>
  Effect.flatMap(CliEnvironment, (env) =>
    loadConfig({ path, env: env.env }).pipe(
      Effect.mapError((error) =>
        error.field === "(file)" && /cannot read/.test(error.message)
          ? usageError(
              error.message,
              `create one with: token-broker init${path.endsWith(`/${DEFAULT_CONFIG_FILE}`) ? "" : ` --config ${path}`}, or pass --config`
            )
          : usageError(error.message)
      )
    )
  )

/** Runs `effect` with the whole broker of `config` (TokenBroker, GrantStore, KeyRing, providers). */
export const withBroker = <A, E, R>(
  config: Config,
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, E | CliFailure, Exclude<R, BrokerServices>> =>
  Effect.provide(effect, Layer.mapError(brokerLayer(config), fromBrokerError))

/** Runs `effect` with only the GrantStore and KeyRing of `config` (no providers needed). */
export const withStore = <A, E, R>(
  config: Config,
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, E | CliFailure, Exclude<R, GrantStore.GrantStore | KeyRing.KeyRing>> =>
  Effect.provide(
    effect,
    Layer.mapError(Layer.merge(storeLayer(config.storage), keyRingLayer(config.keyRing)), fromBrokerError)
  )

/** Where the grants live, for messages: never a password. */
export const describeStorage = (config: Config): string => {
  const storage = config.storage
  switch (storage.kind) {
    case "sqlite":
      return `sqlite ${storage.filename}`
    case "postgres":
      return `postgres ${safeUrl(storage.url)} (schema ${storage.schema})`
    case "mysql":
      return `mysql ${safeUrl(storage.url)}`
    case "vault":
      return `vault ${storage.address} (${storage.mount}/${storage.prefix})`
    case "memory":
      return "memory (nothing is kept after the command ends)"
  }
}

const safeUrl = (url: Redacted.Redacted<string>): string => {
  try {
    const parsed = new URL(Redacted.value(url))
    const user = parsed.username === "" ? "" : `${decodeURIComponent(parsed.username)}@`
    return `${parsed.protocol}//${user}${parsed.host}${parsed.pathname}`
  } catch {
    return "(a URL that does not parse)"
  }
}
