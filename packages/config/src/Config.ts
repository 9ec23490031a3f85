import { readFile, stat } from "node:fs/promises"
import { dirname, extname, isAbsolute, resolve } from "node:path"
import {
  type AccessTokenCache,
  ConfigInvalid,
  KeyRing,
  type ProviderConfig,
  type TokenBroker,
  type TokenVerifier
} from "@token-broker/core"
import { Duration, Effect, Redacted } from "effect"
import { parse as parseYaml, YAMLParseError } from "yaml"
import type { z } from "zod"
import { type ConnectionLimits, resolveConnections } from "./internal/connectionsSchema.js"
import { type ConfigFile, ConfigFileSchema, type SecretRefInput } from "./internal/schema.js"
import { type McpServerConfig, resolveMcpServer } from "./McpServerConfig.js"

export type { ConnectionLimits } from "./internal/connectionsSchema.js"
export { httpServerOptions } from "./internal/connectionsSchema.js"
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

const invalid = (field: string, message: string) => new ConfigInvalid({ field, message })

/** `["providers", 0, "issuer"]` -> `providers[0].issuer` (the form core's own ConfigInvalid uses). */
export const fieldOf = (path: ReadonlyArray<PropertyKey>): string =>
  path.reduce<string>(
    (acc, key) =>
      typeof key === "number" ? `${acc}[${key}]` : acc === "" ? String(key) : `${acc}.${String(key)}`,
    ""
  ) || "(root)"

const describeIssue = (issue: z.core.$ZodIssue): string => {
  switch (issue.code) {
    case "unrecognized_keys":
      return `unknown key${issue.keys.length > 1 ? "s" : ""} ${issue.keys.map((k) => `"${k}"`).join(", ")}: check the spelling against the JSON Schema (schema/token-broker.schema.json)`
    case "invalid_type":
      return issue.input === undefined
        ? `is required (${issue.message.replace(/^Invalid input: /, "").replace(/, received undefined$/, "")})`
        : issue.message.replace(/^Invalid input: /, "")
    default:
      return issue.message
  }
}

/** The first zod issue as a ConfigInvalid naming the field and the fix. */
const fromZod = (error: z.ZodError, path: string | undefined): ConfigInvalid => {
  // the deepest issue is the most precise: unions report their branches' issues nested
  const flatten = (
    issues: ReadonlyArray<z.core.$ZodIssue>,
    prefix: ReadonlyArray<PropertyKey>
  ): Array<{
    issue: z.core.$ZodIssue
    path: ReadonlyArray<PropertyKey>
  }> =>
    issues.flatMap((issue) => {
      const full = [...prefix, ...issue.path]
      // a union with its own message says the fix itself; zod's default one is less precise than its branches
      if (issue.code === "invalid_union" && issue.errors.length > 0 && issue.message === "Invalid input") {
        const best = issue.errors
          .map((branch) => flatten(branch, full))
          .sort((a, b) => depth(b) - depth(a))[0]
        if (best !== undefined && best.length > 0) return best
      }
      return [{ issue, path: full }]
    })
  const depth = (list: ReadonlyArray<{ path: ReadonlyArray<PropertyKey> }>) =>
    Math.max(0, ...list.map((e) => e.path.length))
  const all = flatten(error.issues, [])
  const first = all[0]
  if (first === undefined) return invalid("(root)", "the configuration is invalid")
  const field = fieldOf(first.path)
  const more = all.length > 1 ? ` (and ${all.length - 1} more problem${all.length > 2 ? "s" : ""})` : ""
  return invalid(
    field,
    `${path === undefined ? "config" : path}: ${field}: ${describeIssue(first.issue)}${more}`
  )
}

const duration = (value: number | string | undefined): Duration.Duration | undefined =>
  value === undefined ? undefined : Duration.decode(value as Duration.DurationInput)

/** Reads a secret from the environment or a file (mode 0600 or stricter); never logs or returns it in an error. */
const readSecret = (
  ref: SecretRefInput,
  field: string,
  env: Env,
  baseDir: string
): Effect.Effect<Redacted.Redacted<string>, ConfigInvalid> => {
  if ("env" in ref) {
    const value = env[ref.env]
    return value === undefined || value.length === 0
      ? Effect.fail(
          invalid(
            field,
            `${field}: the environment variable ${ref.env} is not set; export it before starting`
          )
        )
      : Effect.succeed(Redacted.make(value))
  }
  const file = isAbsolute(ref.file) ? ref.file : resolve(baseDir, ref.file)
  return Effect.tryPromise({
    try: async () => {
      const info = await stat(file)
      if (process.platform !== "win32" && (info.mode & 0o077) !== 0) {
        throw new ModeError((info.mode & 0o777).toString(8))
      }
      return (await readFile(file, "utf8")).trim()
    },
    catch: (cause) =>
      cause instanceof ModeError
        ? invalid(
            field,
            `${field}: ${file} is readable by others (mode ${cause.mode}); run: chmod 600 ${file}`
          )
        : invalid(
            field,
            `${field}: cannot read ${file} (${(cause as NodeJS.ErrnoException).code ?? "error"}); check the path`
          )
  }).pipe(
    Effect.flatMap((text) =>
      text.length === 0
        ? Effect.fail(invalid(field, `${field}: ${file} is empty`))
        : Effect.succeed(Redacted.make(text))
    )
  )
}

class ModeError {
  constructor(readonly mode: string) {}
}

const checkHttps = (value: string, allowed: boolean, field: string, flag: string) => {
  if (new URL(value).protocol === "http:" && !allowed) {
    return Effect.fail(
      invalid(
        field,
        `${field}: ${value} is http://; use https://, or set ${flag}: true (local development and tests only)`
      )
    )
  }
  return Effect.void
}

const resolveVault = (
  input:
    | Extract<ConfigFile["storage"], { kind: "vault" }>
    | Extract<ConfigFile["keyRing"], { kind: "vault-transit" }>,
  field: string,
  env: Env,
  baseDir: string
): Effect.Effect<VaultConnection, ConfigInvalid> =>
  Effect.gen(function* () {
    yield* checkHttps(
      input.address,
      input.allowInsecureRequests,
      `${field}.address`,
      `${field}.allowInsecureRequests`
    )
    const auth: VaultConnection["auth"] =
      "token" in input.auth
        ? { token: yield* readSecret(input.auth.token, `${field}.auth.token`, env, baseDir) }
        : {
            appRole: {
              roleId: input.auth.appRole.roleId,
              secretId: yield* readSecret(
                input.auth.appRole.secretId,
                `${field}.auth.appRole.secretId`,
                env,
                baseDir
              ),
              mount: input.auth.appRole.mount
            }
          }
    const caCert =
      input.caCertFile === undefined
        ? undefined
        : yield* Effect.tryPromise({
            try: () => readFile(resolve(baseDir, input.caCertFile ?? ""), "utf8"),
            catch: () =>
              invalid(`${field}.caCertFile`, `${field}.caCertFile: cannot read ${input.caCertFile}`)
          })
    return {
      address: input.address.replace(/\/+$/, ""),
      auth,
      namespace: input.namespace,
      caCert,
      timeout: duration(input.timeout),
      retries: input.retries
    }
  })

/** Cross-field rules that a schema for editors cannot state. */
const checkRelations = (file: ConfigFile): Effect.Effect<void, ConfigInvalid> =>
  Effect.gen(function* () {
    const ids = new Set<string>()
    for (const [i, provider] of file.providers.entries()) {
      const field = `providers[${i}]`
      if (ids.has(provider.id)) {
        return yield* invalid(
          `${field}.id`,
          `${field}.id: provider "${provider.id}" is listed twice; give each provider its own id`
        )
      }
      ids.add(provider.id)
      yield* checkHttps(
        provider.issuer,
        provider.allowInsecureRequests,
        `${field}.issuer`,
        `${field}.allowInsecureRequests`
      )
      if (provider.internalBaseUrl !== undefined) {
        yield* checkHttps(
          provider.internalBaseUrl.to,
          provider.allowInsecureRequests,
          `${field}.internalBaseUrl.to`,
          `${field}.allowInsecureRequests`
        )
      }
    }
    const callerIds = new Set<string>()
    for (const [i, caller] of file.callers.entries()) {
      const field = `callers[${i}]`
      if (callerIds.has(caller.id)) {
        return yield* invalid(
          `${field}.id`,
          `${field}.id: caller "${caller.id}" is listed twice; give each caller its own id`
        )
      }
      callerIds.add(caller.id)
      for (const [j, provider] of caller.providers.entries()) {
        if (provider !== "*" && !ids.has(provider)) {
          return yield* invalid(
            `${field}.providers[${j}]`,
            `${field}.providers[${j}]: "${provider}" is not a configured provider (known: ${[...ids].join(", ")}); use one of them or "*"`
          )
        }
      }
      if (caller.tokenExchange && file.sessionTokens === undefined) {
        return yield* invalid(
          `${field}.tokenExchange`,
          `${field}.tokenExchange: token exchange needs a sessionTokens section (the issuer and audience of users' tokens)`
        )
      }
    }
    if (file.keyRing.kind === "local") {
      const kids = file.keyRing.keys.map((k) => k.kid)
      const twice = kids.find((kid, i) => kids.indexOf(kid) !== i)
      if (twice !== undefined) {
        return yield* invalid("keyRing.keys", `keyRing.keys: key id "${twice}" is listed twice`)
      }
      if (file.keyRing.current !== undefined && !kids.includes(file.keyRing.current)) {
        return yield* invalid(
          "keyRing.current",
          `keyRing.current: "${file.keyRing.current}" is not one of keyRing.keys (${kids.join(", ")})`
        )
      }
    }
    if (file.sessionTokens !== undefined) {
      for (const [i, issuer] of file.sessionTokens.issuers.entries()) {
        const field = `sessionTokens.issuers[${i}]`
        yield* checkHttps(
          issuer.issuer,
          file.sessionTokens.allowInsecureRequests,
          `${field}.issuer`,
          "sessionTokens.allowInsecureRequests"
        )
        const introspection = issuer.introspection
        if (introspection !== undefined && "provider" in introspection && !ids.has(introspection.provider)) {
          return yield* invalid(
            `${field}.introspection.provider`,
            `${field}.introspection.provider: "${introspection.provider}" is not a configured provider`
          )
        }
      }
    }
    if (file.tokenSource.kind === "remote") {
      yield* checkHttps(
        file.tokenSource.url,
        file.tokenSource.allowInsecureRequests,
        "tokenSource.url",
        "tokenSource.allowInsecureRequests"
      )
    }
  })

const resolveConfig = (
  file: ConfigFile,
  env: Env,
  options: ParseOptions
): Effect.Effect<Config, ConfigInvalid> =>
  Effect.gen(function* () {
    yield* checkRelations(file)
    const baseDir = options.baseDir ?? process.cwd()
    const server = file.server
    const publicUrl = (
      server.publicUrl ??
      `http://${server.host.includes(":") ? `[${server.host}]` : server.host}:${server.port}`
    ).replace(/\/+$/, "")

    const storageIn = file.storage
    const storage: StorageConfig =
      storageIn.kind === "memory"
        ? { kind: "memory" }
        : storageIn.kind === "sqlite"
          ? {
              kind: "sqlite",
              filename: isAbsolute(storageIn.filename)
                ? storageIn.filename
                : resolve(baseDir, storageIn.filename),
              migrate: storageIn.migrate,
              busyTimeout: duration(storageIn.busyTimeout)
            }
          : storageIn.kind === "postgres"
            ? {
                kind: "postgres",
                url: yield* readSecret(storageIn.url, "storage.url", env, baseDir),
                schema: storageIn.schema,
                poolSize: storageIn.poolSize,
                statementTimeout: duration(storageIn.statementTimeout),
                connectTimeout: duration(storageIn.connectTimeout),
                migrate: storageIn.migrate,
                applicationName: storageIn.applicationName
              }
            : storageIn.kind === "mysql"
              ? {
                  kind: "mysql",
                  url: yield* readSecret(storageIn.url, "storage.url", env, baseDir),
                  poolSize: storageIn.poolSize,
                  statementTimeout: duration(storageIn.statementTimeout),
                  connectTimeout: duration(storageIn.connectTimeout),
                  migrate: storageIn.migrate
                }
              : {
                  kind: "vault",
                  mount: storageIn.mount,
                  prefix: storageIn.prefix,
                  leaseClockMargin: duration(storageIn.leaseClockMargin),
                  ...(yield* resolveVault(storageIn, "storage", env, baseDir))
                }

    const keyRingIn = file.keyRing
    let keyRing: KeyRingConfig
    if (keyRingIn.kind === "local") {
      const keys: Array<KeyRing.LocalKey> = []
      for (const [i, entry] of keyRingIn.keys.entries()) {
        const field = `keyRing.keys[${i}]`
        const material = yield* readSecret(entry, field, env, baseDir)
        keys.push(
          yield* KeyRing.decodeKey(entry.kid, material).pipe(
            Effect.mapError((e) => invalid(field, `${field}: ${e.message}`))
          )
        )
      }
      keyRing = { kind: "local", keys, current: keyRingIn.current }
    } else {
      keyRing = {
        kind: "vault-transit",
        mount: keyRingIn.mount,
        key: keyRingIn.key,
        ...(yield* resolveVault(keyRingIn, "keyRing", env, baseDir))
      }
    }

    const providers: Array<ProviderConfig> = []
    for (const [i, p] of file.providers.entries()) {
      const field = `providers[${i}].clientAuthentication`
      const auth = p.clientAuthentication
      const clientAuthentication: ProviderConfig["clientAuthentication"] =
        auth.method === "none"
          ? { method: "none" }
          : auth.method === "private_key_jwt"
            ? {
                method: auth.method,
                privateJwk: yield* readSecret(auth.privateJwk, `${field}.privateJwk`, env, baseDir)
              }
            : auth.method === "client_secret_basic"
              ? {
                  method: auth.method,
                  clientSecret: yield* readSecret(auth.clientSecret, `${field}.clientSecret`, env, baseDir),
                  encoding: auth.encoding
                }
              : {
                  method: auth.method,
                  clientSecret: yield* readSecret(auth.clientSecret, `${field}.clientSecret`, env, baseDir)
                }
      providers.push({
        id: p.id,
        issuer: p.issuer.replace(/\/+$/, ""),
        clientId: p.clientId,
        clientAuthentication,
        redirectUri: p.redirectUri ?? `${publicUrl}/connect/callback`,
        defaultScopes: p.scopes,
        resource: p.resource,
        internalBaseUrl: p.internalBaseUrl,
        allowInsecureRequests: p.allowInsecureRequests,
        requestTimeout: duration(p.requestTimeout),
        refreshTokenLifetime: duration(p.refreshTokenLifetime),
        tokenExchange: p.tokenExchange,
        identityBinding: p.identityBinding,
        discovery: p.discovery,
        endpoints: p.endpoints,
        authorizationParameters: p.authorizationParameters,
        offlineAccessScope: p.offlineAccessScope,
        userinfoSubjectField: p.userinfoSubjectField,
        invalidGrantErrors: p.invalidGrantErrors
      })
    }

    let sessionTokens: SessionTokensConfig | undefined
    if (file.sessionTokens !== undefined) {
      const s = file.sessionTokens
      const issuers: Array<IssuerConfig> = []
      for (const [i, issuer] of s.issuers.entries()) {
        const introspection = issuer.introspection
        issuers.push({
          issuer: issuer.issuer.replace(/\/+$/, ""),
          jwksUri: issuer.jwksUri,
          introspection:
            introspection === undefined || "provider" in introspection
              ? introspection
              : {
                  endpoint: introspection.endpoint,
                  clientId: introspection.clientId,
                  clientAuthentication: {
                    method: introspection.clientAuthentication.method,
                    clientSecret: yield* readSecret(
                      introspection.clientAuthentication.clientSecret,
                      `sessionTokens.issuers[${i}].introspection.clientAuthentication.clientSecret`,
                      env,
                      baseDir
                    )
                  }
                }
        })
      }
      sessionTokens = {
        audience: typeof s.audience === "string" ? [s.audience] : s.audience,
        issuers,
        allowInsecureRequests: s.allowInsecureRequests,
        clockTolerance: duration(s.clockTolerance),
        introspectionCacheTtl: duration(s.introspectionCacheTtl),
        verifiedTokenCacheTtl: duration(s.verifiedTokenCacheTtl)
      }
    }

    const b = file.broker
    const broker: TokenBroker.TokenBrokerOptions = {
      tenant: file.tenant,
      earlyRefresh: duration(b.earlyRefresh),
      lease: {
        ...(b.leaseTtl === undefined ? {} : { ttl: Duration.decode(b.leaseTtl as Duration.DurationInput) }),
        ...(b.leaseWait === undefined ? {} : { wait: Duration.decode(b.leaseWait as Duration.DurationInput) })
      },
      retry: {
        ...(b.retryAttempts === undefined ? {} : { attempts: b.retryAttempts }),
        ...(b.retryBaseDelay === undefined
          ? {}
          : { baseDelay: Duration.decode(b.retryBaseDelay as Duration.DurationInput) }),
        ...(b.retryDeadline === undefined
          ? {}
          : { deadline: Duration.decode(b.retryDeadline as Duration.DurationInput) })
      },
      circuit: {
        ...(b.circuitFailureThreshold === undefined ? {} : { failureThreshold: b.circuitFailureThreshold }),
        ...(b.circuitOpenFor === undefined
          ? {}
          : { openFor: Duration.decode(b.circuitOpenFor as Duration.DurationInput) })
      },
      maxConcurrentRefreshes: b.maxConcurrentRefreshes,
      pendingTtl: duration(b.pendingTtl),
      sessionAudience: sessionTokens?.audience
    }

    const ts = file.tokenSource
    const tokenSource: TokenSourceConfig =
      ts.kind === "in-process"
        ? { kind: "in-process" }
        : {
            kind: "remote",
            url: ts.url.replace(/\/+$/, ""),
            clientId: ts.clientId,
            clientSecret: yield* readSecret(ts.clientSecret, "tokenSource.clientSecret", env, baseDir),
            timeout: duration(ts.timeout)
          }

    return {
      path: options.path,
      tenant: file.tenant,
      server: {
        host: server.host,
        port: server.port,
        publicUrl,
        trustProxy: server.trustProxy,
        bodyLimit: server.bodyLimit,
        logLevel: server.logLevel,
        rateLimit: {
          max: server.rateLimit.max,
          timeWindow: Duration.decode(server.rateLimit.timeWindow as Duration.DurationInput)
        },
        shutdownTimeout: Duration.decode(server.shutdownTimeout as Duration.DurationInput),
        returnToOrigins: server.returnToOrigins.map((origin) => new URL(origin).origin),
        callerAuthentication: {
          ...server.callerAuthentication,
          failureWindow: Duration.decode(server.callerAuthentication.failureWindow as Duration.DurationInput)
        },
        connections: resolveConnections(server.connections),
        metrics: {
          token:
            server.metrics.token === undefined
              ? undefined
              : yield* readSecret(server.metrics.token, "server.metrics.token", env, baseDir)
        }
      },
      storage,
      keyRing,
      providers,
      sessionTokens,
      callers: file.callers.map((caller) => ({
        id: caller.id,
        secretHash: caller.secretHash,
        tenant: caller.tenant ?? file.tenant,
        providers: caller.providers,
        subjects: caller.subjects,
        scopes: caller.scopes,
        backgroundTokens: caller.backgroundTokens,
        subjectTokens: caller.subjectTokens,
        tokenExchange: caller.tokenExchange,
        grants: caller.grants
      })),
      broker,
      cache: b.cacheMaxEntries === undefined ? {} : { maxEntries: b.cacheMaxEntries },
      tokenSource,
      mcpServer: yield* resolveMcpServer(file.mcpServer, file.providers)
    }
  })

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
