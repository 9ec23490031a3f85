// Background tokens: `POST /v1/grants/{subject}/{provider}/token` from the stored grant (the hot path), and
// `.../token/rejected`, where a caller reports a token the upstream API refused.
import type { TokenBroker } from "@token-broker/core"
import { Option, Redacted } from "effect"
import type { FastifyRequest } from "fastify"
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod"
import type { Logger } from "pino"
import { z } from "zod"
import type { BrokerContext } from "../BrokerContext.js"
import { checkGrantAccess, grantedScopes, needBackgroundTokens } from "../CallerAccess.js"
import { callerOf } from "../CallerAuthentication.js"
import {
  BackgroundTokenBody,
  bodyOrEmpty,
  GrantPath,
  GrantView,
  IssuedTokenResponse,
  isPlainGrantPath,
  optionalBody,
  RejectedTokenBody
} from "../Schemas.js"
import { grantView, tokenAnswer } from "../Views.js"
import { callerProblems, callerRoute, plainJson, prechecked, problem } from "./answers.js"

/** The token route's path and body without zod when plainly valid: a valid path, no body (read as {}). */
const tokenRouteChecks = {
  params: (params: unknown) => (isPlainGrantPath(params) ? { value: params } : undefined),
  body: (body: unknown) => (body === undefined || body === null ? { value: {} } : undefined)
} as const

/** The authenticated caller of a background-token route, allowed background tokens of the path's grant. */
const grantCaller = (
  request: FastifyRequest & { readonly params: { subject: string; provider: string } }
) => {
  const caller = callerOf(request)
  needBackgroundTokens(caller)
  const { subject, provider } = request.params
  checkGrantAccess(caller, subject, provider)
  return { caller, subject, provider }
}

/** Background tokens: minted from a subject's stored grant, and the report of one an upstream refused. */
export const backgroundTokenRoutes: FastifyPluginAsyncZod<BrokerContext> = async (app, context) => {
  const { broker, run } = context
  // fastify types its logger as pino's base; the instance is the pino logger the server was given
  const debugEnabled = (app.log as unknown as Logger).isLevelEnabled("debug")

  app.post(
    "/v1/grants/:subject/:provider/token",
    {
      config: callerRoute,
      validatorCompiler: prechecked(tokenRouteChecks),
      serializerCompiler: plainJson,
      schema: {
        summary: "Background token from the stored grant",
        description:
          "An access token minted from the subject's stored grant (works while the user is offline). A caller restricted to scopes gets tokens with exactly its scopes unless it names a subset.",
        params: GrantPath,
        body: optionalBody(BackgroundTokenBody),
        response: {
          200: IssuedTokenResponse.describe("The token"),
          ...callerProblems,
          404: problem("provider_not_found"),
          409: problem("consent_required: the user must consent first (see `authorize`)"),
          503: problem("upstream_unavailable or storage_unavailable, with Retry-After")
        }
      }
    },
    // not an async function: a cache hit is answered synchronously (no promise, no microtask for
    // fastify to wait on); a miss returns the runtime's promise, which fastify awaits
    (request, reply) => {
      const { caller, subject, provider } = grantCaller(request)
      const body = request.body
      const tokenRequest: TokenBroker.BackgroundTokenRequest = {
        tenant: caller.tenant,
        subject,
        provider,
        scopes: grantedScopes(caller, body.scopes),
        minTtl: body.minTtl === undefined ? undefined : body.minTtl * 1000
      }
      const answer = (token: TokenBroker.IssuedToken) => {
        if (debugEnabled) {
          request.log.debug(
            {
              caller: caller.id,
              provider,
              source: token.source,
              scopes: token.scopes,
              expiresAt: token.expiresAt
            },
            "background token issued"
          )
        }
        // already serialized (tokenAnswer): fastify sends a string as it is
        void reply
          .header("cache-control", "no-store")
          .type("application/json; charset=utf-8")
          .send(tokenAnswer(token, Date.now()) as never)
      }
      // the hot path: a cache hit settles without entering the runtime
      const cached = broker.cachedToken(tokenRequest)
      if (cached !== undefined) return answer(cached)
      return run(broker.backgroundToken(tokenRequest)).then(answer)
    }
  )

  // The upstream API refused a token this broker issued: drop it, so the next token call refreshes;
  // repeated refusals after refreshes mark the grant for consent (core's reportRejected).
  app.post(
    "/v1/grants/:subject/:provider/token/rejected",
    {
      config: callerRoute,
      schema: {
        summary: "Report a background token the upstream API refused",
        description:
          "The upstream API answered 401 to a token this broker issued. The token is dropped from the broker's cache and store, so the next token call refreshes; when the newest token is refused after several refreshes in a row the grant is marked for consent (status reconsent_required).",
        params: GrantPath,
        body: bodyOrEmpty(RejectedTokenBody),
        response: {
          200: GrantView.describe("The grant after the report (metadata only)"),
          204: z.null().describe("No grant is stored for this subject and provider"),
          ...callerProblems,
          503: problem("storage_unavailable, with Retry-After")
        }
      }
    },
    async (request, reply) => {
      const { caller, subject, provider } = grantCaller(request)
      const grant = await run(
        broker.reportRejected({
          tenant: caller.tenant,
          subject,
          provider,
          accessToken: Redacted.make(request.body.accessToken)
        })
      )
      if (Option.isNone(grant)) return reply.code(204).send(null)
      return grantView(grant.value)
    }
  )
}
