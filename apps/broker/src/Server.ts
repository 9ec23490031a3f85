import { randomUUID } from "node:crypto"
import { type Config, httpServerOptions } from "@token-broker/config"
import { RequestLogger } from "@token-broker/server-kit"
import { Duration } from "effect"
import Fastify, { type FastifyInstance } from "fastify"
import { serializerCompiler, validatorCompiler } from "fastify-type-provider-zod"
import type { Logger } from "pino"
import { type BrokerRuntime, makeBrokerContext } from "./BrokerContext.js"
import { installCallerAuthentication } from "./CallerAuthentication.js"
import { makeCallerAuth } from "./Callers.js"
import { makeHttpMetrics, metricsLogController } from "./Metrics.js"
import { makeRateLimit } from "./RateLimit.js"
import { frameworkErrorReply, installErrorReplies } from "./Replies.js"
import { backgroundTokenRoutes } from "./routes/backgroundTokens.js"
import { consentRoutes } from "./routes/consent.js"
import { docsRoutes, registerApiDocument } from "./routes/docs.js"
import { grantRoutes } from "./routes/grants.js"
import { healthRoutes } from "./routes/health.js"
import { metricsRoutes } from "./routes/metrics.js"
import { tokenExchangeRoutes } from "./routes/tokenExchange.js"

export type { BrokerRuntime } from "./BrokerContext.js"

export interface BrokerServerOptions {
  readonly config: Config
  /** The one runtime of this server: every core use case runs in it. */
  readonly runtime: BrokerRuntime
  readonly logger: Logger
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/

/**
 * Builds the HTTP broker on fastify from its config and runtime (not listening yet: tests listen on
 * port 0). Closing the app lets in-flight requests finish; the caller disposes the runtime after.
 *
 * Order matters: error replies and the hooks first (every route inherits them), then the API document
 * (it sees each route as it is added), then the routes by concern.
 */
export const buildServer = async (options: BrokerServerOptions): Promise<FastifyInstance> => {
  const { config, runtime, logger } = options
  const context = await makeBrokerContext(config, runtime)
  const metrics = makeHttpMetrics()

  const { maxConnections, ...limits } = httpServerOptions(config.server.connections)
  const app = Fastify({
    ...limits,
    loggerInstance: logger,
    // every finished answer is counted where fastify logs it as completed: no onResponse hook
    logController: metricsLogController(metrics),
    childLoggerFactory: (parent, bindings, options) =>
      RequestLogger.lazyChildLogger(parent as unknown as Logger, bindings, options),
    bodyLimit: config.server.bodyLimit,
    // fastify accepts a hop count too; its types name only boolean, string and functions
    trustProxy: config.server.trustProxy as boolean | string,
    return503OnClosing: true,
    forceCloseConnections: "idle",
    requestIdHeader: false,
    genReqId: (req) => {
      const incoming = req.headers["x-request-id"]
      return typeof incoming === "string" && REQUEST_ID.test(incoming) ? incoming : randomUUID()
    },
    routerOptions: { maxParamLength: 1024 },
    // fastify answers these before any route (no hooks, and no completion it logs or counts): the
    // answer is counted here, as an unmatched route's
    frameworkErrors: (error, request, reply) => {
      const started = performance.now()
      reply.raw.once("finish", () =>
        metrics.observe(request.method, "unmatched", reply.statusCode, (performance.now() - started) / 1000)
      )
      frameworkErrorReply(error, request, reply)
    }
  }) as unknown as FastifyInstance

  app.server.maxConnections = maxConnections
  app.setValidatorCompiler(validatorCompiler)
  app.setSerializerCompiler(serializerCompiler)

  // the token endpoint reads its form itself (repeated parameters are an error there)
  app.addContentTypeParser(
    "application/x-www-form-urlencoded",
    { parseAs: "string" },
    (_request, body, done) => {
      done(null, new URLSearchParams(typeof body === "string" ? body : body.toString("utf8")))
    }
  )

  installErrorReplies(app, { bodyLimit: config.server.bodyLimit })

  // Shutting down: answers in flight end their connection, so keep-alive clients do not hold the close up.
  let closing = false
  app.addHook("preClose", async () => {
    closing = true
  })

  // callback hooks, not async ones: each answer skips a promise and a microtask per hook
  app.addHook("onSend", (request, reply, payload, done) => {
    void reply.header("x-request-id", request.id)
    if (closing) void reply.header("connection", "close")
    done(null, payload)
  })

  installCallerAuthentication(
    app,
    makeCallerAuth(config.callers, {
      maxFailures: config.server.callerAuthentication.maxFailures,
      failureWindowMs: Duration.toMillis(config.server.callerAuthentication.failureWindow),
      maxConcurrent: config.server.callerAuthentication.maxConcurrent,
      maxQueued: config.server.callerAuthentication.maxQueued
    }),
    makeRateLimit(config.server.rateLimit)
  )
  await registerApiDocument(app, config.server.publicUrl)

  await app.register(backgroundTokenRoutes, context)
  await app.register(grantRoutes, context)
  await app.register(consentRoutes, context)
  await app.register(tokenExchangeRoutes, context)
  await app.register(healthRoutes, context)
  await app.register(metricsRoutes, { ...context, metrics })
  await app.register(docsRoutes)

  app.addHook("onReady", async () => {
    logger.info(
      {
        providers: config.providers.map((p) => p.id),
        callers: config.callers.length,
        storage: config.storage.kind
      },
      "broker ready"
    )
  })

  return app
}
