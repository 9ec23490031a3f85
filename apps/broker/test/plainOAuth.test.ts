import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { CALLERS, call, connectOverHttp, type Stack, startStack } from "./support/stack.js"

for (const discovery of ["none", "oauth-authorization-server"] as const) {
  describe(`the HTTP broker against a plain OAuth 2.0 provider, GitHub-style (discovery: ${discovery}) (case 8)`, () => {
    let stack: Stack
    beforeAll(async () => {
      stack = await startStack({ backend: "sqlite", plainOAuth: discovery })
    })
    afterAll(() => stack.stop())

    it("consent, background token, rotating refreshes, refused refresh -> 409 and consent again, revoke", async () => {
      const bob = stack.idp.users[1]?.sub ?? ""
      const token = (scopes?: ReadonlyArray<string>) =>
        call(stack, "POST", `/v1/grants/${bob}/notes/token`, {
          caller: CALLERS.agent,
          json: scopes === undefined ? {} : { scopes }
        })

      const consent = await connectOverHttp(stack, 1)
      expect(consent.status).toBe(200)
      expect(consent.html).toContain("Connected to notes")
      const grant = await call(stack, "GET", `/v1/grants/${bob}/notes`, { caller: CALLERS.reader })
      expect(grant.body).toMatchObject({ status: "active", identity: { subject: bob } })
      // refresh_token_expires_in became the grant's refresh-token expiry
      expect(Date.parse(String(grant.body.refreshTokenExpiresAt))).toBeGreaterThan(Date.now())

      const first = await token()
      expect(first.status).toBe(200)
      expect(first.body).toMatchObject({ source: "store" })
      // each downscoped token is a refresh, and each refresh rotates the refresh token
      stack.idp.reuses.clear()
      const rotationsBefore = stack.idp.rotations.list().length
      expect((await token(["notes:read"])).body).toMatchObject({ source: "refresh", scopes: ["notes:read"] })
      expect((await token(["notes:write"])).body).toMatchObject({
        source: "refresh",
        scopes: ["notes:write"]
      })
      expect(stack.idp.rotations.list().length - rotationsBefore).toBe(2)
      expect(stack.idp.reuses.list()).toEqual([])

      // the user revokes the app at the provider: its refusal comes with status 200, the broker sees it
      expect(await stack.idp.revokeGrantOf({ subject: bob })).toBeGreaterThan(0)
      // (the whole life the provider gives its tokens: longer than any cached one has left, so it refreshes)
      const refused = await call(stack, "POST", `/v1/grants/${bob}/notes/token`, {
        caller: CALLERS.agent,
        json: { minTtl: 300 }
      })
      expect(refused.status).toBe(409)
      expect(refused.body).toMatchObject({
        code: "consent_required",
        reason: "invalid_grant",
        provider: "notes"
      })
      const marked = await call(stack, "GET", `/v1/grants/${bob}/notes`, { caller: CALLERS.reader })
      expect(marked.body).toMatchObject({ status: "reconsent_required" })

      expect((await connectOverHttp(stack, 1)).status).toBe(200)
      expect((await token(["notes:read"])).body).toMatchObject({ source: "refresh" })

      const revoked = await call(stack, "DELETE", `/v1/grants/${bob}/notes`, { caller: CALLERS.agent })
      expect(revoked.status).toBe(200)
      expect(revoked.body).toMatchObject({ removed: true, upstream: "revoked" })
      expect((await token()).status).toBe(409)
    })
  })
}
