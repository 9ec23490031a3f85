import { formatFindings, scanForSecrets } from "@token-broker/secret-scan"
import { describe, expect, it, vi } from "vitest"
import {
  CALLERS,
  call,
  connectOverHttp,
  LogCapture,
  notesToken,
  runSecrets,
  startStack,
  userToken
} from "./support/stack.js"

describe("operations", () => {
  it("the whole flow at debug level logs no secret of the run in any encoding, nor any credential (F19)", async () => {
    const logs = new LogCapture()
    const stack = await startStack({ backend: "sqlite", logLevel: "debug", logStream: logs })
    try {
      const consent = await connectOverHttp(stack, 0)
      expect(consent.status).toBe(200)
      const alice = consent.user.sub
      // served tokens go on the scan's list as `call` receives them
      await notesToken(stack, alice)
      await call(stack, "POST", `/v1/grants/${alice}/notes/token`, {
        caller: CALLERS.agent,
        json: { scopes: ["notes:read"] }
      })
      const subjectToken = await userToken(stack.idp)
      const exchanged = await fetch(`${stack.url}/oauth/token`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({
          grant_type: "urn:ietf:params:oauth:grant-type:token-exchange",
          subject_token: subjectToken,
          subject_token_type: "urn:ietf:params:oauth:token-type:access_token",
          audience: "notes",
          client_id: CALLERS.agent.id,
          client_secret: CALLERS.agent.secret
        }).toString()
      })
      const body = (await exchanged.json()) as { access_token: string }
      runSecrets.add("access token exchanged with client_secret_post", body.access_token)
      // failures are logged too: a wrong secret, a bad token
      const wrong = { id: "agent", secret: "wrong-secret-123456" }
      runSecrets.add("a wrong caller secret", wrong.secret)
      await call(stack, "POST", `/v1/grants/${alice}/notes/token`, { caller: wrong })
      await call(stack, "GET", "/v1/grants", { caller: CALLERS.agent })
      await stack.rememberStored()
      await call(stack, "DELETE", `/v1/grants/${alice}/notes`, { caller: CALLERS.agent })
    } finally {
      await stack.stop()
    }
    const text = logs.text()
    expect(text.split("\n").length).toBeGreaterThan(20)
    expect(text).toContain('"level":20') // debug lines were written
    expect(runSecrets.count("refresh token of")).toBeGreaterThan(0)
    expect(runSecrets.count("PKCE code verifier of")).toBe(1)
    const findings = scanForSecrets(text, runSecrets)
    expect(findings, formatFindings(findings)).toEqual([])
  })

  it("graceful shutdown lets an in-flight request finish", async () => {
    const stack = await startStack({ backend: "memory" })
    try {
      const consent = await connectOverHttp(stack, 0)
      const alice = consent.user.sub
      // the next refresh at the provider takes 800 ms
      stack.idp.faults.inject({ kind: "latency", ms: 800, grantType: "refresh_token" })
      // close only once the broker is inside the request: its refresh has reached dev-idp
      const refreshes = stack.idp.counters.count({ grantType: "refresh_token" })
      const inFlight = call(stack, "POST", `/v1/grants/${alice}/notes/token`, {
        caller: CALLERS.agent,
        json: { scopes: ["notes:read"] }
      })
      await vi.waitFor(
        () => expect(stack.idp.counters.count({ grantType: "refresh_token" })).toBe(refreshes + 1),
        { timeout: 20_000, interval: 10 }
      )
      const closing = stack.broker.close()
      const answer = await inFlight
      expect(answer.status).toBe(200)
      expect(answer.body.source).toBe("refresh")
      await closing
      // closed: new connections are refused
      await expect(fetch(`${stack.url}/healthz`)).rejects.toThrow()
    } finally {
      await stack.stop()
    }
  })
})
