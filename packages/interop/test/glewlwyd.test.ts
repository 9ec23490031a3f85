import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type InteropStack, PROVIDER, SUBJECT, startInteropStack } from "./support/stack.js"

const tokenPath = `/v1/grants/${SUBJECT}/${PROVIDER}/token`

/** The access token works at Glewlwyd's own userinfo endpoint. */
const userinfo = (stack: InteropStack, accessToken: string) =>
  fetch(`${stack.glewlwyd.issuer}/userinfo`, { headers: { authorization: `Bearer ${accessToken}` } })

/**
 * A caller's report that the upstream API refused the token: the broker drops it, so the next call
 * refreshes (Glewlwyd's tokens live 90 s; this is how the suite asks for a refresh without waiting).
 */
const report = async (stack: InteropStack, accessToken: string) => {
  const reported = await stack.call("POST", `${tokenPath}/rejected`, { accessToken })
  expect(reported.status, JSON.stringify(reported.body)).toBeLessThan(300)
}

const refreshAfterRefusal = async (stack: InteropStack, accessToken: string) => {
  await report(stack, accessToken)
  return stack.call("POST", tokenPath, {})
}

describe("the broker against Glewlwyd 2.7.5 (an OpenID Provider we did not write)", () => {
  let stack: InteropStack
  beforeAll(async () => {
    stack = await startInteropStack()
  })
  afterAll(async () => {
    await stack?.stop()
  })

  it("consent in Chromium stores a grant", async () => {
    const page = await stack.consent()
    expect(page.status).toBe(200)
    const grant = await stack.call("GET", `/v1/grants/${SUBJECT}/${PROVIDER}`)
    expect(grant.status).toBe(200)
    expect(grant.body).toMatchObject({ status: "active" })
  })

  it("a background token works at the provider", async () => {
    const token = await stack.call("POST", tokenPath, {})
    expect(token.status).toBe(200)
    const accessToken = String(token.body.accessToken)
    expect((await userinfo(stack, accessToken)).status).toBe(200)
  })

  it("a refresh rotates the one-use refresh token (the next test's refresh uses the successor)", async () => {
    const current = await stack.call("POST", tokenPath, {})
    const before = stack.glewlwyd.accessTokensIssued()
    const next = await refreshAfterRefusal(stack, String(current.body.accessToken))
    expect(next.status, JSON.stringify(next.body)).toBe(200)
    expect(next.body.accessToken).not.toBe(current.body.accessToken)
    expect(stack.glewlwyd.accessTokensIssued()).toBe(before + 1)
    expect((await userinfo(stack, String(next.body.accessToken))).status).toBe(200)
    const grant = await stack.call("GET", `/v1/grants/${SUBJECT}/${PROVIDER}`)
    expect(grant.body).toMatchObject({ status: "active" })
  })

  it("50 concurrent calls after the current token was refused upstream make one refresh", async () => {
    const current = await stack.call("POST", tokenPath, {})
    await report(stack, String(current.body.accessToken))
    const before = stack.glewlwyd.accessTokensIssued()
    const answers = await Promise.all(Array.from({ length: 50 }, () => stack.call("POST", tokenPath, {})))
    expect(answers.map((a) => a.status)).toEqual(Array.from({ length: 50 }, () => 200))
    expect(new Set(answers.map((a) => String(a.body.accessToken))).size).toBe(1)
    expect(stack.glewlwyd.accessTokensIssued()).toBe(before + 1)
  })

  it("revoke removes the grant and revokes the refresh token and the current access token at the provider", async () => {
    const current = await stack.call("POST", tokenPath, {})
    const accessToken = String(current.body.accessToken)
    expect((await userinfo(stack, accessToken)).status).toBe(200)
    const revoked = await stack.call("DELETE", `/v1/grants/${SUBJECT}/${PROVIDER}`)
    expect(revoked.status).toBe(200)
    expect(revoked.body).toMatchObject({
      removed: true,
      upstream: "revoked",
      accessTokens: "revoked",
      revokedAtProvider: { refreshToken: true, accessTokens: 1 }
    })
    // the access token stops working at once, not when it expires
    expect((await userinfo(stack, accessToken)).status).toBe(401)
    const after = await stack.call("POST", tokenPath, {})
    expect(after.status).toBe(409)
  })

  it("a replayed refresh token: Glewlwyd's bare 400 sends the user to consent (refused_without_error)", async () => {
    expect((await stack.consent()).status).toBe(200)
    const current = await stack.call("POST", tokenPath, {})
    expect(current.status).toBe(200)
    // someone else uses the stored refresh token first: the broker's copy is now a replay
    const stolen = await stack.storedRefreshToken()
    const used = await fetch(`${stack.glewlwyd.issuer}/token`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({
        grant_type: "refresh_token",
        refresh_token: stolen,
        client_id: stack.glewlwyd.client.id,
        client_secret: stack.glewlwyd.client.secret
      }).toString()
    })
    expect(used.status).toBe(200)
    await used.text()
    const refused = await refreshAfterRefusal(stack, String(current.body.accessToken))
    expect(refused.status, JSON.stringify(refused.body)).toBe(409)
    expect(refused.body).toMatchObject({ code: "consent_required", reason: "refused_without_error" })
    const grant = await stack.call("GET", `/v1/grants/${SUBJECT}/${PROVIDER}`)
    expect(grant.body).toMatchObject({ status: "reconsent_required", lastErrorCode: "refused_without_error" })
    const logged = stack.logs.lines.filter((line) => line.outcome === "refused_without_error")
    expect(logged).toHaveLength(1)
    expect(logged[0]).toMatchObject({
      level: 40,
      provider: PROVIDER,
      grant: expect.stringContaining(SUBJECT),
      operation: "refresh",
      errorCode: "refused_without_error",
      status: 400,
      contentType: "none",
      body: ""
    })
    expect(stack.logs.text()).not.toContain(stolen)
  })
})
