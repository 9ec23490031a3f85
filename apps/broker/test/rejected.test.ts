import { describe, expect, it } from "vitest"
import { CALLERS, call, connectWithToken, notesToken, startStack } from "./support/stack.js"

describe("POST /v1/grants/{subject}/{provider}/token/rejected", () => {
  it("drops a refused token: the next token call refreshes and the grant records the refusal", async () => {
    const stack = await startStack({ backend: "sqlite" })
    try {
      const { subject: alice, first } = await connectWithToken(stack)
      const reported = await call(stack, "POST", `/v1/grants/${alice}/notes/token/rejected`, {
        caller: CALLERS.agent,
        json: { accessToken: first.body.accessToken }
      })
      expect(reported.status).toBe(200)
      expect(reported.body.status).toBe("active")
      expect(reported.body.lastErrorCode).toBe("access_token_rejected")
      expect(JSON.stringify(reported.body)).not.toContain(String(first.body.accessToken))
      const next = await notesToken(stack, alice)
      expect(next.status).toBe(200)
      expect(next.body.source).toBe("refresh")
      expect(next.body.accessToken).not.toBe(first.body.accessToken)
      // the same checks as the token route: a caller without background tokens may not report
      const forbidden = await call(stack, "POST", `/v1/grants/${alice}/notes/token/rejected`, {
        caller: CALLERS.reader,
        json: { accessToken: "x" }
      })
      expect(forbidden.status).toBe(403)
      const unknown = await call(stack, "POST", "/v1/grants/u-nobody/notes/token/rejected", {
        caller: CALLERS.agent,
        json: { accessToken: "x" }
      })
      expect(unknown.status).toBe(204)
    } finally {
      await stack.stop()
    }
  })
})
