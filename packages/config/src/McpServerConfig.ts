import { ConfigInvalid } from "@token-broker/core"
import { Duration, Effect } from "effect"
import { type ConnectionLimits, resolveConnections } from "./internal/connectionsSchema.js"
import type { McpServerFile } from "./internal/mcpServerSchema.js"

/** The MCP server app's settings (the config file's `mcpServer` section), resolved. */
export interface McpServerConfig {
  readonly host: string
  readonly port: number
  /** Without a trailing slash; the MCP endpoint and token audience is `${publicUrl}/mcp`. */
  readonly publicUrl: string
  readonly authorizationServer: {
    readonly issuer: string
    readonly jwksUri?: string | undefined
    readonly allowInsecureRequests: boolean
    readonly clockTolerance?: Duration.Duration | undefined
  }
  readonly notes:
    | {
        readonly provider: string
        /** Without a trailing slash. */
        readonly apiUrl: string
        readonly readScopes: ReadonlyArray<string>
        readonly writeScopes: ReadonlyArray<string>
        readonly allowInsecureRequests: boolean
      }
    | undefined
  /** Scopes MCP clients' tokens must carry: for every request, and for the reading and writing notes tools. */
  readonly clientScopes: {
    readonly tools: ReadonlyArray<string>
    readonly notesRead: ReadonlyArray<string>
    readonly notesWrite: ReadonlyArray<string>
  }
  /** Providers whose tokens are RFC 8693 session tokens (exchanged from the MCP client's token). */
  readonly exchangeProviders: ReadonlyArray<string>
  /** Host headers accepted at /mcp: publicUrl's host and `allowedHosts` (lowercase). */
  readonly allowedHosts: ReadonlyArray<string>
  /** Origin headers accepted at /mcp: publicUrl's origin and `allowedOrigins`. */
  readonly allowedOrigins: ReadonlyArray<string>
  /** Whether a token issued to a client itself (`sub` = its client id) is accepted as a user. */
  readonly allowClientTokens: boolean
  /** fastify's trustProxy: where client addresses come from. */
  readonly trustProxy: boolean | string | number
  readonly connections: ConnectionLimits
  readonly sessions: {
    readonly max: number
    readonly maxPerSubject: number
    readonly idleTimeoutMs: number
    /** New sessions per subject and per client address per window. */
    readonly createLimit: {
      readonly perSubject: number
      readonly perAddress: number
      readonly timeWindowMs: number
    }
  }
  readonly logLevel: "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent"
}

const millis = (value: number | string) => Duration.toMillis(Duration.decode(value as Duration.DurationInput))

const httpsOnly = (value: string, allowed: boolean, field: string, flag: string) =>
  new URL(value).protocol === "http:" && !allowed
    ? Effect.fail(
        new ConfigInvalid({
          field,
          message: `${field}: ${value} is http://; use https://, or set ${flag}: true (local development and tests only)`
        })
      )
    : Effect.void

/**
 * Resolves the `mcpServer` section against the configured providers (`notes.provider` must be one; each
 * of `exchangeProviders` must be one with `tokenExchange`).
 */
export const resolveMcpServer = (
  file: McpServerFile | undefined,
  providers: ReadonlyArray<{ readonly id: string; readonly tokenExchange?: unknown }>
): Effect.Effect<McpServerConfig | undefined, ConfigInvalid> =>
  Effect.gen(function* () {
    if (file === undefined) return undefined
    const providerIds = providers.map((p) => p.id)
    for (const [i, id] of file.exchangeProviders.entries()) {
      const provider = providers.find((p) => p.id === id)
      if (provider === undefined || provider.tokenExchange === undefined) {
        return yield* new ConfigInvalid({
          field: `mcpServer.exchangeProviders[${i}]`,
          message: `mcpServer.exchangeProviders[${i}]: "${id}" is not a configured provider${provider === undefined ? "" : " with tokenExchange"}; configure it for token exchange or remove it`
        })
      }
    }
    const as = file.authorizationServer
    yield* httpsOnly(
      as.issuer,
      as.allowInsecureRequests,
      "mcpServer.authorizationServer.issuer",
      "mcpServer.authorizationServer.allowInsecureRequests"
    )
    if (file.notes !== undefined) {
      if (!providerIds.includes(file.notes.provider)) {
        return yield* new ConfigInvalid({
          field: "mcpServer.notes.provider",
          message: `mcpServer.notes.provider: "${file.notes.provider}" is not a configured provider (known: ${providerIds.join(", ")})`
        })
      }
      yield* httpsOnly(
        file.notes.apiUrl,
        file.notes.allowInsecureRequests,
        "mcpServer.notes.apiUrl",
        "mcpServer.notes.allowInsecureRequests"
      )
    }
    const host = file.host.includes(":") ? `[${file.host}]` : file.host
    const publicUrl = (file.publicUrl ?? `http://${host}:${file.port}`).replace(/\/+$/, "")
    for (const [i, origin] of file.allowedOrigins.entries()) {
      if (new URL(origin).origin !== origin.replace(/\/$/, "")) {
        return yield* new ConfigInvalid({
          field: `mcpServer.allowedOrigins[${i}]`,
          message: `mcpServer.allowedOrigins[${i}]: "${origin}" is not an origin; write scheme://host[:port] only, e.g. ${new URL(origin).origin}`
        })
      }
    }
    const own = new URL(publicUrl)
    return {
      host: file.host,
      port: file.port,
      publicUrl,
      authorizationServer: {
        issuer: as.issuer.replace(/\/+$/, ""),
        jwksUri: as.jwksUri,
        allowInsecureRequests: as.allowInsecureRequests,
        clockTolerance:
          as.clockTolerance === undefined
            ? undefined
            : Duration.decode(as.clockTolerance as Duration.DurationInput)
      },
      notes:
        file.notes === undefined
          ? undefined
          : { ...file.notes, apiUrl: file.notes.apiUrl.replace(/\/+$/, "") },
      clientScopes: file.clientScopes,
      exchangeProviders: file.exchangeProviders,
      allowedHosts: [...new Set([own.host, ...file.allowedHosts.map((h) => h.toLowerCase())])],
      allowedOrigins: [...new Set([own.origin, ...file.allowedOrigins.map((o) => new URL(o).origin)])],
      allowClientTokens: file.allowClientTokens,
      trustProxy: file.trustProxy,
      connections: resolveConnections(file.connections),
      sessions: {
        max: file.sessions.max,
        maxPerSubject: file.sessions.maxPerSubject,
        idleTimeoutMs: millis(file.sessions.idleTimeout),
        createLimit: {
          perSubject: file.sessions.createLimit.perSubject,
          perAddress: file.sessions.createLimit.perAddress,
          timeWindowMs: millis(file.sessions.createLimit.timeWindow)
        }
      },
      logLevel: file.logLevel
    }
  })
