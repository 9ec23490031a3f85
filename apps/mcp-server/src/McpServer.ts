import { layerRemote } from "@token-broker/client"
import { type BrokerLayerError, brokerLayer, type Config, type McpServerConfig } from "@token-broker/config"
import { ConfigInvalid, KeyRing, TokenBroker, TokenSource, TokenVerifier } from "@token-broker/core"
import { Logger } from "@token-broker/server-kit"
import { Context, Effect, type Exit, Layer, ManagedRuntime, Option } from "effect"
import type { FastifyInstance } from "fastify"
import type { DestinationStream, Logger as PinoLogger } from "pino"
import { Agent } from "undici"
import { makeKeptAliveSend } from "./internal/keptAliveSend.js"
import { buildServer, MCP_PATH } from "./Server.js"

/** The MCP server's logger: the servers' one pino setup and redaction list (`@token-broker/server-kit`). */
export const makeLogger = (level: McpServerConfig["logLevel"], stream?: DestinationStream): PinoLogger =>
  Logger.makeLogger({ level, service: "token-broker-mcp", stream })

export interface RunningMcpServer {
  readonly app: FastifyInstance
  /** e.g. `http://127.0.0.1:8090` (where it listens). */
  readonly url: string
  /** The MCP endpoint clients connect to: `${mcpServer.publicUrl}/mcp` (also the token audience). */
  readonly mcpUrl: string
  readonly tokenSource: "in-process" | "remote"
  readonly logger: PinoLogger
  readonly close: () => Promise<void>
  /**
   * With the broker in this process: runs an effect on its key ring (`followKeyRing` reloads it through
   * this). A remote token source holds no keys here.
   */
  readonly runWithKeyRing: (<A, E>(effect: Effect.Effect<A, E, KeyRing.KeyRing>) => Promise<A>) | undefined
}

export interface StartOptions {
  readonly logStream?: DestinationStream | undefined
  /** Overrides of `mcpServer.port` / `mcpServer.host`. */
  readonly port?: number | undefined
  readonly host?: string | undefined
}

/** The consent callback of the in-process broker; none with a remote token source (the broker has its own). */
export class ConsentCallback extends Context.Tag("@token-broker/mcp-server/ConsentCallback")<
  ConsentCallback,
  Option.Option<TokenBroker.TokenBrokerService["completeAuthorization"]>
>() {}

/** The in-process broker's key ring, when there is one. */
export class LocalKeyRing extends Context.Tag("@token-broker/mcp-server/LocalKeyRing")<
  LocalKeyRing,
  Option.Option<KeyRing.KeyRingService>
>() {}

/**
 * The token source of a config: the broker in this process (same storage, keys and providers as the
 * HTTP broker), or a remote HTTP broker (`tokenSource.kind: remote`) through `@token-broker/client`.
 */
export const layerTokenSource = (
  config: Config
): Layer.Layer<TokenSource.TokenSource | ConsentCallback | LocalKeyRing, BrokerLayerError> => {
  const source = config.tokenSource
  if (source.kind === "remote") {
    // one kept-alive pool to the broker for the runtime's life, closed with it
    const pool = Effect.acquireRelease(
      Effect.sync(() => new Agent({ keepAliveTimeout: 30_000 })),
      (agent) => Effect.promise(() => agent.close())
    )
    return Layer.mergeAll(
      Layer.unwrapScoped(
        Effect.map(pool, (agent) =>
          layerRemote({
            url: source.url,
            clientId: source.clientId,
            clientSecret: source.clientSecret,
            timeout: source.timeout,
            ...(source.cacheTokens === false ? { tokenCache: false as const } : {}),
            send: makeKeptAliveSend(agent)
          })
        )
      ),
      Layer.succeed(ConsentCallback, Option.none()),
      Layer.succeed(LocalKeyRing, Option.none())
    )
  }
  return Layer.mergeAll(
    TokenSource.layerFromBroker,
    Layer.effect(
      ConsentCallback,
      Effect.map(TokenBroker.TokenBroker, (broker) => Option.some(broker.completeAuthorization))
    ),
    Layer.effect(LocalKeyRing, Effect.map(KeyRing.KeyRing, Option.some))
  ).pipe(Layer.provide(brokerLayer(config)))
}

/** Builds the one runtime from the config, the server on it, and listens. */
export const startMcpServer = async (
  config: Config,
  options: StartOptions = {}
): Promise<RunningMcpServer> => {
  const mcp = config.mcpServer
  if (mcp === undefined) {
    throw new ConfigInvalid({
      field: "mcpServer",
      message:
        "mcpServer: the config has no mcpServer section (publicUrl, authorizationServer, notes); add one"
    })
  }
  const logger = makeLogger(mcp.logLevel, options.logStream)
  const runtime = ManagedRuntime.make(layerTokenSource(config))
  let app: FastifyInstance
  let closeSessions: () => Promise<void>
  let keyRing: Option.Option<KeyRing.KeyRingService> = Option.none()
  try {
    // builds every layer now: a bad key, an unreachable database or a bad provider fails the start
    const tokenSource = await runtime.runPromise(TokenSource.TokenSource)
    const callback = await runtime.runPromise(ConsentCallback)
    keyRing = await runtime.runPromise(LocalKeyRing)
    const verifier = await runtime.runPromise(
      TokenVerifier.make({
        issuers: [{ issuer: mcp.authorizationServer.issuer, jwksUri: mcp.authorizationServer.jwksUri }],
        allowInsecureRequests: mcp.authorizationServer.allowInsecureRequests,
        clockTolerance: mcp.authorizationServer.clockTolerance
      })
    )
    const built = await buildServer({
      config: mcp,
      providers: config.providers,
      tokenSource,
      verifier,
      completeAuthorization: Option.getOrUndefined(callback),
      // the layers were built above: a failure here can only be the effect's own
      run: <A, E>(effect: Effect.Effect<A, E>) => runtime.runPromiseExit(effect) as Promise<Exit.Exit<A, E>>,
      logger: logger as unknown as FastifyInstance["log"]
    })
    app = built.app
    closeSessions = built.closeSessions
    await app.listen({ port: options.port ?? mcp.port, host: options.host ?? mcp.host })
  } catch (error) {
    await runtime.dispose()
    throw error
  }
  const address = app.server.address()
  const port = typeof address === "object" && address !== null ? address.port : mcp.port
  const host = options.host ?? mcp.host
  let closing: Promise<void> | undefined
  const close = () => {
    closing ??= (async () => {
      try {
        await closeSessions()
        await app.close()
      } finally {
        await runtime.dispose()
      }
    })()
    return closing
  }
  return {
    app,
    url: `http://${host.includes(":") ? `[${host}]` : host}:${port}`,
    mcpUrl: `${mcp.publicUrl}${MCP_PATH}`,
    tokenSource: config.tokenSource.kind,
    logger,
    close,
    runWithKeyRing: Option.match(keyRing, {
      onNone: () => undefined,
      onSome:
        (ring) =>
        <A, E>(effect: Effect.Effect<A, E, KeyRing.KeyRing>) =>
          runtime.runPromise(Effect.provideService(effect, KeyRing.KeyRing, ring))
    })
  }
}
