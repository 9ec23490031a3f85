import { consentFailure, RESULT_PAGE_HEADERS, type TokenBroker } from "@token-broker/core"
import { ResultPage } from "@token-broker/server-kit"
import { Cause, Exit, Option } from "effect"
import type { FastifyInstance } from "fastify"
import type { Run } from "../ToolContext.js"

const RESULT_PAGE_PRODUCT = "token-broker MCP server"

/**
 * `GET /connect/callback`, with the in-process token source: finishes consent and shows the user what
 * happened (the broker's own callback does this for a remote token source).
 */
export const registerConsentCallback = (
  app: FastifyInstance,
  completeAuthorization: TokenBroker.TokenBrokerService["completeAuthorization"],
  run: Run
): void => {
  app.get("/connect/callback", async (request, reply) => {
    const params = new URL(request.url, "http://callback.invalid").searchParams
    const exit = await run(completeAuthorization(params))
    void reply.headers(RESULT_PAGE_HEADERS)
    if (Exit.isSuccess(exit)) {
      const grant = exit.value.grant
      request.log.info({ provider: grant.provider }, "consent completed")
      return reply.send(
        ResultPage.resultPage(RESULT_PAGE_PRODUCT, {
          ok: true,
          title: `Connected to ${grant.provider}`,
          detail: "You can close this window and return to your MCP client."
        })
      )
    }
    const failure = Cause.failureOption(exit.cause)
    const error = Option.isSome(failure) ? failure.value : undefined
    request.log.info({ reason: error?._tag ?? "defect" }, "consent failed")
    const page =
      error === undefined
        ? {
            title: "Not connected",
            detail: "Something went wrong on the server; start again from your MCP client."
          }
        : consentFailure(error)
    return reply
      .code(error?._tag === "AuthorizationNotPending" ? 400 : error === undefined ? 500 : 400)
      .send(ResultPage.resultPage(RESULT_PAGE_PRODUCT, { ok: false, ...page }))
  })
}
