import { isAbsolute, resolve } from "node:path"
import { type ConfigInvalid, KeyRing, type ProviderConfig, type TokenBroker } from "@token-broker/core"
import { Duration, Effect } from "effect"
import type {
  Config,
  Env,
  IssuerConfig,
  KeyRingConfig,
  ParseOptions,
  SessionTokensConfig,
  StorageConfig,
  TokenSourceConfig
} from "../Config.js"
import { resolveMcpServer } from "../McpServerConfig.js"
import { resolveConnections } from "./connectionsSchema.js"
import { invalid } from "./issues.js"
import { checkRelations } from "./relations.js"
import type { ConfigFile } from "./schema.js"
import { duration, readSecret, resolveVault } from "./secrets.js"

/** The parsed file -> the validated Config: cross-field checks, secrets read, durations decoded, defaults derived. */
export const resolveConfig = (
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
        replacedGrants: p.replacedGrants,
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
            timeout: duration(ts.timeout),
            cacheTokens: ts.cacheTokens
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
