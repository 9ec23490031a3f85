import { createHash, timingSafeEqual } from "node:crypto"
import { Metric, Redacted } from "effect"
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod"
import type { BrokerContext } from "../BrokerContext.js"
import type { HttpMetrics } from "../Metrics.js"
import { sendProblem } from "../Replies.js"
import { problem, text } from "./answers.js"

/**
 * `/metrics` in the Prometheus text format, behind an optional bearer token: compared as SHA-256
 * digests in constant time (no length leak).
 */
export const metricsRoutes: FastifyPluginAsyncZod<BrokerContext & { readonly metrics: HttpMetrics }> = async (
  app,
  { config, runtime, metrics }
) => {
  const token = config.server.metrics.token
  const expected =
    token === undefined ? undefined : createHash("sha256").update(Redacted.value(token)).digest()
  app.get(
    "/metrics",
    {
      config: { rateLimit: false },
      schema: {
        summary: "Prometheus metrics",
        security: [],
        response: {
          200: text("text/plain", "text format 0.0.4"),
          401: problem("server.metrics.token is set and the request does not bear it")
        }
      }
    },
    async (request, reply) => {
      if (expected !== undefined) {
        const presented = /^Bearer ([\x21-\x7E]+)$/.exec(request.headers.authorization ?? "")?.[1]
        const digest = createHash("sha256")
          .update(presented ?? "")
          .digest()
        if (presented === undefined || !timingSafeEqual(digest, expected)) {
          return sendProblem(request, reply, {
            status: 401,
            code: "unauthorized",
            title: "Unauthorized",
            detail: "/metrics needs Authorization: Bearer <server.metrics.token>",
            headers: { "www-authenticate": 'Bearer realm="token-broker metrics"' }
          })
        }
      }
      const snapshot = await runtime.runPromise(Metric.snapshot)
      return reply.type("text/plain; version=0.0.4; charset=utf-8").send(await metrics.render(snapshot))
    }
  )
}
