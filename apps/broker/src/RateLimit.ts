import rateLimit from "@fastify/rate-limit"
import type { Config } from "@token-broker/config"
import { Duration } from "effect"
import type { FastifyInstance } from "fastify"
import { httpProblem } from "./Problems.js"

/**
 * Requests per caller (per client address before authentication) and time window, on every route that
 * does not opt out (`config.rateLimit: false`: health, readiness, metrics). It runs in `preValidation`,
 * after caller authentication (it is keyed by the caller) and before the route's schemas, so a
 * malformed request counts as much as a good one.
 */
export const registerRateLimit = (app: FastifyInstance, limits: Config["server"]["rateLimit"]) =>
  app.register(rateLimit, {
    global: true,
    hook: "preValidation",
    max: limits.max,
    timeWindow: Duration.toMillis(limits.timeWindow),
    keyGenerator: (request) => (request.caller === null ? `ip:${request.ip}` : `caller:${request.caller.id}`),
    errorResponseBuilder: (_request, context) =>
      httpProblem(
        429,
        "rate_limited",
        "Too many requests",
        `Rate limit of ${context.max} requests exceeded; retry after ${context.after}`,
        { headers: { "retry-after": String(Math.max(1, Math.ceil(context.ttl / 1000))) } }
      )
  })
