import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  ACCESS_TOKEN_TYPE,
  CALLERS,
  call,
  LogCapture,
  type Stack,
  startStack,
  TOKEN_EXCHANGE,
  userToken
} from "./support/stack.js"

const exchange = async (stack: Stack, subjectToken: string) => {
  const response = await fetch(`${stack.url}/oauth/token`, {
    method: "POST",
    headers: {
      authorization: `Basic ${Buffer.from(`${CALLERS.agent.id}:${CALLERS.agent.secret}`).toString("base64")}`,
      "content-type": "application/x-www-form-urlencoded"
    },
    body: new URLSearchParams({
      grant_type: TOKEN_EXCHANGE,
      subject_token: subjectToken,
      subject_token_type: ACCESS_TOKEN_TYPE,
      audience: "notes",
      scope: "notes:read"
    })
  })
  return { status: response.status, body: (await response.json()) as Record<string, unknown> }
}

describe("a provider configured for token exchange that does not do it (case 6)", () => {
  it("its metadata lacks the token-exchange grant: the broker refuses to start, naming the field", async () => {
    const started = startStack({
      backend: "memory",
      plainOAuth: "oauth-authorization-server",
      notes: { tokenExchange: {} }
    })
    await expect(started).rejects.toMatchObject({
      _tag: "ConfigInvalid",
      field: "providers[0].tokenExchange"
    })
    await expect(started).rejects.toThrow(/does not support RFC 8693 token exchange/)
  })

  describe("its metadata says nothing (discovery none): a warning at start, a clear error at exchange", () => {
    let stack: Stack
    const logs = new LogCapture()
    beforeAll(async () => {
      stack = await startStack({
        backend: "memory",
        plainOAuth: "none",
        notes: { tokenExchange: {} },
        logLevel: "info",
        logStream: logs
      })
    })
    afterAll(() => stack.stop())

    it("warns at start-up that support is known only at the first exchange", () => {
      const warnings = logs
        .text()
        .split("\n")
        .filter((line) => line.includes('"level":40'))
      expect(warnings.some((line) => /provider \\"notes\\".*no grant_types_supported/.test(line))).toBe(true)
    })

    it("an upstream unsupported_grant_type is a 400 invalid_target saying so, not a 502 server_error", async () => {
      const answer = await exchange(stack, await userToken(stack.idp))
      expect(answer.status).toBe(400)
      expect(answer.body.error).toBe("invalid_target")
      expect(String(answer.body.error_description)).toMatch(
        /provider "notes" does not support RFC 8693 token exchange \(it answered unsupported_grant_type\)/
      )
    })
  })

  describe("control: a provider whose metadata lists the grant", () => {
    let stack: Stack
    beforeAll(async () => {
      stack = await startStack({ backend: "memory" })
    })
    afterAll(() => stack.stop())

    it("starts, and exchanges", async () => {
      const answer = await exchange(stack, await userToken(stack.idp))
      expect(answer.status).toBe(200)
      expect(answer.body.issued_token_type).toBe(ACCESS_TOKEN_TYPE)
      const grants = await call(stack, "GET", "/v1/grants", { caller: CALLERS.reader })
      expect(grants.status).toBe(200)
    })
  })
})
