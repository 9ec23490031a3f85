import { Cause, Effect, Exit, Option } from "effect"
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod"
import type { BrokerContext } from "../BrokerContext.js"
import { HealthResponse, ReadinessResponse } from "../Schemas.js"

/** Liveness, and readiness: the grant store and every provider's authorization server answer. */
export const healthRoutes: FastifyPluginAsyncZod<BrokerContext> = async (app, context) => {
  const { config, runtime, store, servers } = context
  const open = { rateLimit: false as const }

  app.get(
    "/healthz",
    {
      config: open,
      schema: { summary: "Liveness", security: [], response: { 200: HealthResponse.describe("ok") } }
    },
    async () => ({ status: "ok" as const })
  )

  const check = <A, E>(effect: Effect.Effect<A, E>) =>
    runtime
      .runPromiseExit(
        Effect.timeoutFail(effect, { duration: "5 seconds", onTimeout: () => "timeout" as const })
      )
      .then((exit) =>
        Exit.isSuccess(exit)
          ? "ok"
          : Option.match(Cause.failureOption(exit.cause), {
              onNone: () => "failed",
              onSome: (e) => (e === "timeout" ? "timeout" : ((e as { code?: string }).code ?? "failed"))
            })
      )

  app.get(
    "/readyz",
    {
      config: open,
      schema: {
        summary: "Readiness: storage and providers reachable",
        security: [],
        response: {
          200: ReadinessResponse.describe("ready"),
          503: ReadinessResponse.describe("not ready, with the failing checks")
        }
      }
    },
    async (_request, reply) => {
      const storage = check(
        store.get({ tenant: "__readyz__", subject: "__readyz__", provider: "__readyz__" })
      )
      const providers = Promise.all(
        config.providers.map(async (provider) => {
          const status = await check(
            Effect.flatMap(servers.get(provider.id), (client) =>
              client.authorizationUrl({
                state: "readyz",
                nonce: "readyz",
                codeChallenge: "readyz",
                scopes: ["openid"],
                redirectUri: provider.redirectUri
              })
            )
          )
          return [provider.id, status] as const
        })
      )
      const checks = { storage: await storage, providers: Object.fromEntries(await providers) }
      const ready = checks.storage === "ok" && Object.values(checks.providers).every((s) => s === "ok")
      return reply.code(ready ? 200 : 503).send({ status: ready ? "ready" : "not_ready", checks })
    }
  )
}
