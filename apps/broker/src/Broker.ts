import { type BrokerLayerError, brokerLayer, type Config } from "@token-broker/config"
import { AuthorizationServer, type KeyRing } from "@token-broker/core"
import { EffectLogger, Logger } from "@token-broker/server-kit"
import { Cause, Duration, Effect, Exit, Layer, ManagedRuntime } from "effect"
import type { FastifyInstance } from "fastify"
import type { DestinationStream, Logger as PinoLogger } from "pino"
import { buildServer } from "./Server.js"

/** The broker's logger: the servers' one pino setup and redaction list (`@token-broker/server-kit`). */
export const makeLogger = (level: Config["server"]["logLevel"], stream?: DestinationStream): PinoLogger =>
  Logger.makeLogger({ level, service: "token-broker", stream })

export const REDACT_PATHS = Logger.REDACT_PATHS

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
      EffectLogger.layerEffectLogger(logger, config.server.logLevel)
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
