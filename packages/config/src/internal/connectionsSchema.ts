import { Duration } from "effect"
import { z } from "zod"
import { Duration as DurationInput } from "./duration.js"

/**
 * Connection limits of an HTTP server (the broker's `server.connections`, the MCP server's
 * `mcpServer.connections`): a client that sends slowly, or holds connections open, is cut off.
 */
export interface ConnectionsDefaults {
  readonly requestTimeout: string
  readonly headersTimeout: string
  readonly idleTimeout: string
  readonly keepAliveTimeout: string
  readonly max: number
}

export const connectionsSchema = (defaults: ConnectionsDefaults) =>
  z
    .strictObject({
      requestTimeout: DurationInput.default(defaults.requestTimeout).describe(
        "The whole request (headers and body) must arrive within this; 0: no limit"
      ),
      headersTimeout: DurationInput.default(defaults.headersTimeout).describe(
        "The request headers must arrive within this (at most requestTimeout)"
      ),
      idleTimeout: DurationInput.default(defaults.idleTimeout).describe(
        "A connection with no traffic either way is closed after this; 0: never"
      ),
      keepAliveTimeout: DurationInput.default(defaults.keepAliveTimeout).describe(
        "An idle keep-alive connection between requests is closed after this"
      ),
      max: z
        .number()
        .int()
        .min(1)
        .default(defaults.max)
        .describe("Open connections at once; more are refused")
    })
    .default({ ...defaults })
    .describe("Timeouts and a connection cap against slow or hoarding clients")

/** The broker's defaults. */
export const brokerConnections: ConnectionsDefaults = {
  requestTimeout: "30 seconds",
  headersTimeout: "10 seconds",
  idleTimeout: "60 seconds",
  keepAliveTimeout: "5 seconds",
  max: 1024
}

/** The MCP server's: its SSE streams may be quiet for minutes. */
export const mcpConnections: ConnectionsDefaults = { ...brokerConnections, idleTimeout: "10 minutes" }

export type ConnectionsFile = z.output<ReturnType<typeof connectionsSchema>>

/** Connection limits, resolved (milliseconds). */
export interface ConnectionLimits {
  readonly requestTimeoutMs: number
  /** At most requestTimeoutMs where that is set. */
  readonly headersTimeoutMs: number
  readonly idleTimeoutMs: number
  readonly keepAliveTimeoutMs: number
  readonly maxConnections: number
}

const millis = (value: number | string) => Duration.toMillis(Duration.decode(value as Duration.DurationInput))

export const resolveConnections = (file: ConnectionsFile): ConnectionLimits => {
  const requestTimeoutMs = millis(file.requestTimeout)
  const headersTimeoutMs = millis(file.headersTimeout)
  return {
    requestTimeoutMs,
    headersTimeoutMs: requestTimeoutMs > 0 ? Math.min(headersTimeoutMs, requestTimeoutMs) : headersTimeoutMs,
    idleTimeoutMs: millis(file.idleTimeout),
    keepAliveTimeoutMs: millis(file.keepAliveTimeout),
    maxConnections: file.max
  }
}

/**
 * The options of fastify and Node's HTTP server that enforce `limits` (spread into `Fastify({...})`; set
 * `maxConnections` on `app.server`). Node checks request and header deadlines on a timer
 * (`connectionsCheckingInterval`, 30 s by default): it runs at a fraction of the shortest deadline, so a
 * slow client is cut off close to its deadline rather than up to 30 s later.
 */
export const httpServerOptions = (limits: ConnectionLimits) => {
  const deadlines = [limits.requestTimeoutMs, limits.headersTimeoutMs].filter((ms) => ms > 0)
  const shortest = deadlines.length === 0 ? 30_000 : Math.min(...deadlines)
  return {
    requestTimeout: limits.requestTimeoutMs,
    connectionTimeout: limits.idleTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    http: {
      headersTimeout: limits.headersTimeoutMs,
      connectionsCheckingInterval: Math.min(30_000, Math.max(100, Math.floor(shortest / 4)))
    },
    maxConnections: limits.maxConnections
  }
}
