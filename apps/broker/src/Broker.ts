import { type BrokerLayerError, brokerLayer, type Config } from "@token-broker/config"
import { AuthorizationServer, type KeyRing } from "@token-broker/core"
import { Cause, Duration, Effect, Exit, HashMap, Layer, Logger, LogLevel, ManagedRuntime } from "effect"
import type { FastifyInstance } from "fastify"
import { type DestinationStream, type Logger as PinoLogger, pino } from "pino"
import { buildServer } from "./Server.js"

/**
 * Log redaction: whatever a log line carries, these never reach the output. The request serializer
 * already logs only method, path (no query string: a consent callback's `code` and `state` live there),
 * request id and remote address; bodies are never logged.
 */
export const REDACT_PATHS = [
  "req.headers.authorization",
  "req.headers.cookie",
  "headers.authorization",
  "headers.cookie",
  "*.authorization",
  "*.client_secret",
  "*.clientSecret",
  "*.subject_token",
  "*.access_token",
  "*.accessToken",
  "*.refresh_token",
  "*.refreshToken",
  "*.id_token",
  "*.password",
  "*.secret",
  "*.code",
  "*.state"
]

export const makeLogger = (level: Config["server"]["logLevel"], stream?: DestinationStream): PinoLogger =>
  pino(
    {
      level,
      base: { service: "token-broker" },
      redact: { paths: REDACT_PATHS, censor: "[redacted]" },
      serializers: {
        req: (req: { method?: string; url?: string; id?: string; ip?: string }) => ({
          method: req.method,
          path: (req.url ?? "").split("?")[0],
          remoteAddress: req.ip
        }),
        res: (res: { statusCode?: number }) => ({ statusCode: res.statusCode })
      }
    },
    stream ?? pino.destination(1)
  )

/**
 * Effect's logs (from core and the stores) go to the same pino logger, at the matching level, with their
 * annotations as fields (provider, grant, outcome, status...: core never annotates a secret, and the
 * redaction paths apply to them as to every other field).
 */
const effectLogger = (log: PinoLogger) =>
  Logger.replace(
    Logger.defaultLogger,
    Logger.make(({ logLevel, message, annotations }) => {
      const text = Array.isArray(message) ? message.map(String).join(" ") : String(message)
      const fields = { ...Object.fromEntries(HashMap.toEntries(annotations)), source: "effect" }
      if (LogLevel.greaterThanEqual(logLevel, LogLevel.Error)) log.error(fields, text)
      else if (LogLevel.greaterThanEqual(logLevel, LogLevel.Warning)) log.warn(fields, text)
      else if (LogLevel.greaterThanEqual(logLevel, LogLevel.Info)) log.info(fields, text)
      else log.debug(fields, text)
    })
  )

/** Effect drops lines below Info unless told: the runtime's minimum follows `server.logLevel`. */
const EFFECT_LEVELS: Record<Config["server"]["logLevel"], LogLevel.LogLevel> = {
  trace: LogLevel.Trace,
  debug: LogLevel.Debug,
  info: LogLevel.Info,
  warn: LogLevel.Warning,
  error: LogLevel.Error,
  fatal: LogLevel.Fatal,
  silent: LogLevel.None
}

export interface RunningBroker {
  readonly app: FastifyInstance
  /** e.g. `http://127.0.0.1:8080` */
  readonly url: string
  readonly logger: PinoLogger
  /**
   * Graceful shutdown: stops accepting connections, lets in-flight requests finish (at most
   * `server.shutdownTimeout`, then open connections are closed), then releases storage and key ring.
   */
  readonly close: () => Promise<void>
  /** Runs an effect on the broker's runtime: `followKeyRing` reloads the running key ring through it. */
  readonly runWithKeyRing: <A, E>(effect: Effect.Effect<A, E, KeyRing.KeyRing>) => Promise<A>
}

export interface StartOptions {
  /** Where logs go (default stdout). */
  readonly logStream?: DestinationStream | undefined
  /** Overrides of `server.port` / `server.host` (tests use port 0). */
  readonly port?: number | undefined
  readonly host?: string | undefined
}

/** Builds the one runtime from the config's layer, the server on it, and listens. */
export const startBroker = async (config: Config, options: StartOptions = {}): Promise<RunningBroker> => {
  const logger = makeLogger(config.server.logLevel, options.logStream)
  const runtime = ManagedRuntime.make(
    Layer.mergeAll(
      brokerLayer(config),
      effectLogger(logger),
      Logger.minimumLogLevel(EFFECT_LEVELS[config.server.logLevel])
    ) as Layer.Layer<Layer.Layer.Success<ReturnType<typeof brokerLayer>>, BrokerLayerError>
  )
  let app: FastifyInstance
  try {
    // builds every layer now: a bad key, an unreachable database or a bad provider fails the start
    await runtime.runtime()
    // a provider configured for token exchange whose metadata says it has none stops the start
    const checked = await runtime.runPromiseExit(
      Effect.flatMap(AuthorizationServer.AuthorizationServers, AuthorizationServer.checkTokenExchange)
    )
    if (Exit.isFailure(checked)) throw Cause.squash(checked.cause)
    for (const warning of checked.value) logger.warn({ check: "token_exchange" }, warning)
    app = await buildServer({ config, runtime, logger })
    await app.listen({ port: options.port ?? config.server.port, host: options.host ?? config.server.host })
  } catch (error) {
    await runtime.dispose()
    throw error
  }
  const address = app.server.address()
  const port = typeof address === "object" && address !== null ? address.port : config.server.port
  const host = options.host ?? config.server.host
  let closing: Promise<void> | undefined
  const close = () => {
    closing ??= (async () => {
      const timeout = setTimeout(
        () => app.server.closeAllConnections(),
        Duration.toMillis(config.server.shutdownTimeout)
      )
      try {
        await app.close()
      } finally {
        clearTimeout(timeout)
        await runtime.dispose()
      }
    })()
    return closing
  }
  return {
    app,
    url: `http://${host.includes(":") ? `[${host}]` : host}:${port}`,
    logger,
    close,
    runWithKeyRing: (effect) => runtime.runPromise(effect)
  }
}
