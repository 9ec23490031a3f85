import { readFile } from "node:fs/promises"
import { dirname, extname, resolve } from "node:path"
import type {
  AccessTokenCache,
  ConfigInvalid,
  KeyRing,
  ProviderConfig,
  TokenBroker,
  TokenVerifier
} from "@token-broker/core"
import { type Duration, Effect, type Redacted } from "effect"
import { parse as parseYaml, YAMLParseError } from "yaml"
import type { ConnectionLimits } from "./internal/connectionsSchema.js"
import { fromZod, invalid } from "./internal/issues.js"
import { resolveConfig } from "./internal/resolve.js"
import { ConfigFileSchema } from "./internal/schema.js"
import type { McpServerConfig } from "./McpServerConfig.js"

export type { ConnectionLimits } from "./internal/connectionsSchema.js"
export { httpServerOptions } from "./internal/connectionsSchema.js"
export { fieldOf } from "./internal/issues.js"
export type { ConfigFile, ConfigFileInput } from "./internal/schema.js"
export { ConfigFileSchema }

/** Environment variables, as the app entry point passes them (`process.env`); the library never reads them itself. */
export type Env = Readonly<Record<string, string | undefined>>

/** A registered caller of the HTTP broker and what it may do. */
export interface CallerPolicy {
  readonly id: string
  /** `scrypt$...` (see `hashSecret`). */
  readonly secretHash: string
  readonly tenant: string
  /** Provider ids, or "*" for every provider. */
  readonly providers: ReadonlyArray<string>
  /** Exact subjects, "prefix*" patterns, or "*". */
  readonly subjects: ReadonlyArray<string>
  /** Scopes it may ask for, or "*". */
  readonly scopes: ReadonlyArray<string>
  readonly backgroundTokens: boolean
  readonly tokenExchange: boolean
  /**
   * Subject tokens it may exchange: those whose client (azp / client_id) is the caller itself or in
   * `clientIds` ("*": any), or whose audience is in `audiences`.
   */
  readonly subjectTokens: {
    readonly clientIds: ReadonlyArray<string>
    readonly audiences: ReadonlyArray<string>
  }
  readonly grants: "none" | "read" | "manage"
}

export interface VaultConnection {
  readonly address: string
  readonly auth:
    | { readonly token: Redacted.Redacted<string> }
    | {
        readonly appRole: {
          readonly roleId: string
          readonly secretId: Redacted.Redacted<string>
          readonly mount?: string | undefined
        }
      }
  readonly namespace?: string | undefined
  readonly caCert?: string | undefined
  readonly timeout?: Duration.Duration | undefined
  readonly retries?: number | undefined
}

export type StorageConfig =
  | { readonly kind: "memory" }
  | {
      readonly kind: "sqlite"
      /** Absolute path (relative paths in the file are resolved against the config file's folder). */
      readonly filename: string
      readonly migrate: boolean
      readonly busyTimeout?: Duration.Duration | undefined
    }
  | {
      readonly kind: "postgres"
      readonly url: Redacted.Redacted<string>
      readonly schema: string
      readonly poolSize?: number | undefined
      readonly statementTimeout?: Duration.Duration | undefined
      readonly connectTimeout?: Duration.Duration | undefined
      readonly migrate: boolean
      readonly applicationName?: string | undefined
    }
  | {
      /** MariaDB (tested: 10.11). */
      readonly kind: "mysql"
      readonly url: Redacted.Redacted<string>
      readonly poolSize?: number | undefined
      readonly statementTimeout?: Duration.Duration | undefined
      readonly connectTimeout?: Duration.Duration | undefined
      readonly migrate: boolean
    }
  | ({
      readonly kind: "vault"
      readonly mount: string
      readonly prefix: string
      readonly leaseClockMargin?: Duration.Duration | undefined
    } & VaultConnection)

export type KeyRingConfig =
  | {
      readonly kind: "local"
      readonly keys: ReadonlyArray<KeyRing.LocalKey>
      readonly current?: string | undefined
    }
  | ({ readonly kind: "vault-transit"; readonly mount: string; readonly key: string } & VaultConnection)

export type IssuerConfig = Omit<TokenVerifier.IssuerOptions, "introspection"> & {
  readonly introspection?:
    | { readonly provider: string }
    | Extract<TokenVerifier.IntrospectionOptions, { readonly endpoint: string }>
    | undefined
}

export interface SessionTokensConfig {
  readonly audience: ReadonlyArray<string>
  readonly issuers: ReadonlyArray<IssuerConfig>
  readonly allowInsecureRequests: boolean
  readonly clockTolerance?: Duration.Duration | undefined
  readonly introspectionCacheTtl?: Duration.Duration | undefined
  readonly verifiedTokenCacheTtl?: Duration.Duration | undefined
}

export interface ServerConfig {
  readonly host: string
  readonly port: number
  /** Without a trailing slash. */
  readonly publicUrl: string
  readonly trustProxy: boolean | string | number
  readonly bodyLimit: number
  readonly logLevel: "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent"
  readonly rateLimit: { readonly max: number; readonly timeWindow: Duration.Duration }
  readonly shutdownTimeout: Duration.Duration
  /** Origins (`https://app.example.com`) a consent's `returnTo` may point to. */
  readonly returnToOrigins: ReadonlyArray<string>
  /** Abuse limits of caller authentication: failures per client address, concurrent scrypt verifications. */
  readonly callerAuthentication: {
    readonly maxFailures: number
    readonly failureWindow: Duration.Duration
    readonly maxConcurrent: number
    readonly maxQueued: number
  }
  readonly connections: ConnectionLimits
  /** With a token, `/metrics` requires `Authorization: Bearer <token>`. */
  readonly metrics: { readonly token?: Redacted.Redacted<string> | undefined }
}

export type TokenSourceConfig =
  | { readonly kind: "in-process" }
  | {
      readonly kind: "remote"
      readonly url: string
      readonly clientId: string
      readonly clientSecret: Redacted.Redacted<string>
      readonly timeout?: Duration.Duration | undefined
      /** Background tokens kept in the app's process (RemoteTokenSourceOptions.tokenCache); default true. */
      readonly cacheTokens?: boolean | undefined
    }

/** The validated configuration, with every secret resolved into a `Redacted` and every duration decoded. */
export interface Config {
  /** The file it came from, when it came from one. */
  readonly path: string | undefined
  readonly tenant: string
  readonly server: ServerConfig
  readonly storage: StorageConfig
  readonly keyRing: KeyRingConfig
  readonly providers: ReadonlyArray<ProviderConfig>
  readonly sessionTokens: SessionTokensConfig | undefined
  readonly callers: ReadonlyArray<CallerPolicy>
  readonly broker: TokenBroker.TokenBrokerOptions
  readonly cache: AccessTokenCache.AccessTokenCacheOptions
  readonly tokenSource: TokenSourceConfig
  /** The MCP server app's section; undefined when the file has none. */
  readonly mcpServer: McpServerConfig | undefined
}

export interface ParseOptions {
  /** Relative file paths in the config (SQLite file, key and secret files) are resolved against it. Default: cwd. */
  readonly baseDir?: string | undefined
  /** Where the config came from, for messages. */
  readonly path?: string | undefined
}

/**
 * Validates a parsed config document (the object from a YAML/JSON file) and resolves its secrets from
 * `env` and secret files. Fails with `ConfigInvalid` naming the field (`providers[0].issuer`) and the fix.
 */
export const parseConfig = (
  input: unknown,
  env: Env,
  options: ParseOptions = {}
): Effect.Effect<Config, ConfigInvalid> =>
  Effect.suspend(() => {
    const parsed = ConfigFileSchema.safeParse(input, { reportInput: true })
    return parsed.success
      ? resolveConfig(parsed.data, env, options)
      : Effect.fail(fromZod(parsed.error, options.path))
  })

/** Parses the text of a config file: YAML (`.yaml`, `.yml`) or JSON (`.json`); YAML otherwise (a superset of JSON). */
export const parseConfigText = (text: string, path: string): Effect.Effect<unknown, ConfigInvalid> =>
  Effect.try({
    try: () => (extname(path) === ".json" ? JSON.parse(text) : parseYaml(text, { prettyErrors: true })),
    catch: (cause) =>
      invalid(
        "(file)",
        `${path}: not valid ${extname(path) === ".json" ? "JSON" : "YAML"}: ${
          cause instanceof YAMLParseError || cause instanceof SyntaxError
            ? cause.message.split("\n")[0]
            : "parse error"
        }`
      )
  })

/**
 * Reads, validates and resolves a config file. Relative paths in it are resolved against its folder.
 * `env` is the environment to read secrets from: apps pass `process.env`.
 */
export const loadConfig = (options: {
  readonly path: string
  readonly env: Env
}): Effect.Effect<Config, ConfigInvalid> =>
  Effect.gen(function* () {
    const path = resolve(options.path)
    const text = yield* Effect.tryPromise({
      try: () => readFile(path, "utf8"),
      catch: (cause) =>
        invalid(
          "(file)",
          `cannot read the config file ${path} (${(cause as NodeJS.ErrnoException).code ?? "error"}); pass the path of an existing file`
        )
    })
    const document = yield* parseConfigText(text, path)
    return yield* parseConfig(document, options.env, { baseDir: dirname(path), path })
  })
