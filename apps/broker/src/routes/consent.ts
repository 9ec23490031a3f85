import { consentFailure, RESULT_PAGE_HEADERS } from "@token-broker/core"
import { Cause, Exit, Option } from "effect"
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod"
import type { BrokerContext } from "../BrokerContext.js"
import { checkGrantRoute, grantedScopes } from "../CallerAccess.js"
import { callerOf } from "../CallerAuthentication.js"
import { resultPage } from "../internal/resultPage.js"
import { invalidRequest, problemOf } from "../Problems.js"
import { AuthorizeBody, AuthorizeResponse, GrantPath, optionalBody } from "../Schemas.js"
import { callerProblems, callerRoute, text } from "./answers.js"

/**
 * Consent: a caller starts it (the authorization URL for the user's browser), and the provider sends
 * the browser back to the callback, which stores the grant and answers a result page.
 */
export const consentRoutes: FastifyPluginAsyncZod<BrokerContext> = async (app, context) => {
  const { config, broker, runtime, run } = context

  app.post(
    "/v1/grants/:subject/:provider/authorize",
    {
      config: callerRoute,
      schema: {
        summary: "Start consent: the authorization URL",
        description:
          "Send the user's browser to authorizationUrl; the provider returns it to /connect/callback.",
        params: GrantPath,
        body: optionalBody(AuthorizeBody),
        response: { 200: AuthorizeResponse.describe("Where to send the user"), ...callerProblems }
      }
    },
    async (request) => {
      const caller = callerOf(request)
      const { subject, provider } = checkGrantRoute(caller, request.params, "manage")
      const body = request.body
      const scopes = grantedScopes(caller, body.scopes)
      if (
        body.returnTo !== undefined &&
        !config.server.returnToOrigins.includes(new URL(body.returnTo).origin)
      ) {
        throw invalidRequest("returnTo", "returnTo: its origin is not in server.returnToOrigins")
      }
      const started = await run(
        broker.startAuthorization({
          tenant: caller.tenant,
          subject,
          provider,
          scopes,
          returnTo: body.returnTo
        })
      )
      request.log.debug({ caller: caller.id, provider, expiresAt: started.expiresAt }, "consent started")
      return {
        authorizationUrl: started.authorizationUrl.href,
        expiresAt: new Date(started.expiresAt).toISOString()
      }
    }
  )

  // The user's browser: no caller, and answers are pages (the query holds code and state, read raw so
  // repeated or odd parameters reach core's own checks).
  app.get(
    "/connect/callback",
    {
      schema: {
        summary: "Finishes consent in the user's browser",
        security: [],
        response: {
          200: text("text/html", "HTML result page"),
          "4xx": text("text/html", "HTML page saying what went wrong"),
          "5xx": text("text/html", "HTML page saying what went wrong")
        }
      }
    },
    async (request, reply) => {
      const params = new URL(request.url, "http://callback.invalid").searchParams
      void reply.headers(RESULT_PAGE_HEADERS)
      if (!params.has("state")) {
        return reply.code(400).send(
          resultPage({
            ok: false,
            title: "Nothing to finish here",
            detail:
              "This address finishes a consent that the broker started; open the authorization link you were given instead."
          })
        )
      }
      const exit = await runtime.runPromiseExit(broker.completeAuthorization(params))
      if (Exit.isSuccess(exit)) {
        const { grant, returnTo } = exit.value
        request.log.debug(
          { subject: grant.subject, provider: grant.provider, version: grant.version },
          "consent completed"
        )
        return resultPage({
          ok: true,
          title: `Connected to ${grant.provider}`,
          detail: `The broker may now act for ${grant.subject} at ${grant.provider} (scopes: ${grant.scopes.join(" ") || "none"}). You can close this window.`,
          returnTo
        })
      }
      const failure = Cause.failureOption(exit.cause)
      if (Option.isSome(failure)) {
        const problem = problemOf(failure.value)
        request.log.debug({ code: problem.code }, "consent not completed")
        return reply.code(problem.status).send(resultPage({ ok: false, ...consentFailure(failure.value) }))
      }
      request.log.error({ err: { message: "completeAuthorization failed with a defect" } }, "request failed")
      return reply.code(500).send(
        resultPage({
          ok: false,
          title: "Something went wrong",
          detail: "The consent could not be finished; try again."
        })
      )
    }
  )
}
