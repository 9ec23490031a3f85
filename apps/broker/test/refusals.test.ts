import { describe, expect, it } from "vitest"
import { CALLERS, call, connectWithToken, LogCapture, notesToken, startStack } from "./support/stack.js"

describe("a refresh the provider refuses with a bare 400 (no OAuth error body)", () => {
  it("answers 409 consent_required (refused_without_error) and logs the refusal once", async () => {
    const logs = new LogCapture()
    const stack = await startStack({ backend: "sqlite", logLevel: "info", logStream: logs })
    try {
      const { subject: alice, first } = await connectWithToken(stack)
      await call(stack, "POST", `/v1/grants/${alice}/notes/token/rejected`, {
        caller: CALLERS.agent,
        json: { accessToken: first.body.accessToken }
      })
      stack.idp.faults.inject({ kind: "bare_status", status: 400, grantType: "refresh_token" })
      const refused = await notesToken(stack, alice)
      expect(refused.status).toBe(409)
      expect(refused.body).toMatchObject({ code: "consent_required", reason: "refused_without_error" })
      const again = await notesToken(stack, alice)
      expect(again.status).toBe(409)
      expect(again.body).toMatchObject({ reason: "refused_without_error" })
      const grant = await call(stack, "GET", `/v1/grants/${alice}/notes`, { caller: CALLERS.agent })
      expect(grant.body).toMatchObject({
        status: "reconsent_required",
        lastErrorCode: "refused_without_error"
      })
      const lines = logs
        .text()
        .split("\n")
        .filter((line) => line.includes('"outcome":"refused_without_error"'))
      expect(lines).toHaveLength(1)
      expect(JSON.parse(lines[0] ?? "{}")).toMatchObject({ level: 40, provider: "notes", status: 400 })
    } finally {
      await stack.stop()
    }
  })
})
