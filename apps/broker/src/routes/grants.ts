import type { GrantStatus } from "@token-broker/core"
import { Option } from "effect"
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod"
import type { BrokerContext } from "../BrokerContext.js"
import { checkGrantRoute, checkListFilter, needGrants } from "../CallerAccess.js"
import { callerOf } from "../CallerAuthentication.js"
import { httpProblem } from "../Problems.js"
import { GrantListResponse, GrantPath, GrantView, ListGrantsQuery, RevokeResponse } from "../Schemas.js"
import { grantView } from "../Views.js"
import { callerProblems, callerRoute, problem } from "./answers.js"

/** Grant administration: list, read and revoke grants (metadata only, never a token). */
export const grantRoutes: FastifyPluginAsyncZod<BrokerContext> = async (app, { broker, run }) => {
  app.get(
    "/v1/grants",
    {
      config: callerRoute,
      schema: {
        summary: "List grants (paged)",
        querystring: ListGrantsQuery,
        response: {
          200: GrantListResponse.describe("A page of grants (metadata only, never a token)"),
          ...callerProblems
        }
      }
    },
    async (request) => {
      const caller = callerOf(request)
      needGrants(caller, "read")
      const query = request.query
      checkListFilter(caller, query)
      const list = await run(
        broker.listGrants({
          filter: {
            tenant: caller.tenant,
            subject: query.subject,
            provider: query.provider,
            status: query.status as GrantStatus | undefined
          },
          cursor: query.cursor,
          limit: query.limit ?? 50
        })
      )
      return { items: list.items.map(grantView), nextCursor: list.nextCursor }
    }
  )

  app.get(
    "/v1/grants/:subject/:provider",
    {
      config: callerRoute,
      schema: {
        summary: "One grant's status",
        params: GrantPath,
        response: { 200: GrantView.describe("The grant"), ...callerProblems, 404: problem("grant_not_found") }
      }
    },
    async (request) => {
      const caller = callerOf(request)
      const { subject, provider } = checkGrantRoute(caller, request.params, "read")
      const found = await run(broker.grantStatus({ tenant: caller.tenant, subject, provider }))
      if (Option.isNone(found)) {
        throw httpProblem(
          404,
          "grant_not_found",
          "Grant not found",
          `No grant of this subject for provider "${provider}"`,
          {
            extensions: {
              authorize: {
                method: "POST",
                href: `/v1/grants/${encodeURIComponent(subject)}/${encodeURIComponent(provider)}/authorize`
              }
            }
          }
        )
      }
      return grantView(found.value)
    }
  )

  app.delete(
    "/v1/grants/:subject/:provider",
    {
      config: callerRoute,
      schema: {
        summary: "Revoke a grant",
        description:
          "Revokes the refresh token at the provider (RFC 7009) and deletes the grant, even when the provider call fails (reported).",
        params: GrantPath,
        response: { 200: RevokeResponse.describe("What was removed"), ...callerProblems }
      }
    },
    async (request) => {
      const caller = callerOf(request)
      const { subject, provider } = checkGrantRoute(caller, request.params, "manage")
      const result = await run(broker.revoke({ tenant: caller.tenant, subject, provider }))
      return {
        removed: result.removed,
        upstream: result.upstream,
        ...(result.upstreamError === undefined ? {} : { upstreamError: result.upstreamError }),
        accessTokens: result.accessTokens,
        revokedAtProvider: result.revokedAtProvider
      }
    }
  )
}
