import { createHash, randomBytes } from "node:crypto"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { DefaultClientIds, type DevIdp, DevIdpLoginError, startDevIdp } from "../src/index.js"

const VERIFIER = randomBytes(32).toString("base64url")
const CHALLENGE = createHash("sha256").update(VERIFIER).digest("base64url")

describe("the native client: loopback redirect URIs on any port (RFC 8252 section 7.3)", () => {
  let idp: DevIdp
  const carol = { username: "carol", password: "carol-dev-password" }
  beforeAll(async () => {
    idp = await startDevIdp({ users: [{ sub: "sub-carol", ...carol }] })
  })
  afterAll(() => idp.close())

  const authorize = (clientId: string, redirectUri: string) => {
    const url = new URL(`${idp.issuer}/auth`)
    url.search = new URLSearchParams({
      client_id: clientId,
      response_type: "code",
      redirect_uri: redirectUri,
      scope: "openid offline_access notes:read",
      prompt: "consent",
      resource: idp.notesAudience,
      state: "s-1",
      code_challenge: CHALLENGE,
      code_challenge_method: "S256"
    }).toString()
    return idp.driveAuthorization(url, carol)
  }

  it("accepts the callback on whatever port the app bound, on 127.0.0.1 and [::1], and the code redeems there", async () => {
    const native = idp.client(DefaultClientIds.native)
    expect(native.redirectUris).toEqual(["http://127.0.0.1/callback", "http://[::1]/callback"])
    for (const redirectUri of ["http://127.0.0.1:54321/callback", "http://[::1]:1024/callback"]) {
      const callback = await authorize(DefaultClientIds.native, redirectUri)
      expect(`${callback.origin}${callback.pathname}`).toBe(redirectUri)
      const code = callback.searchParams.get("code") ?? ""
      const response = await fetch(`${idp.issuer}/token`, {
        method: "POST",
        headers: {
          "content-type": "application/x-www-form-urlencoded",
          authorization: `Basic ${Buffer.from(`${native.clientId}:${native.clientSecret}`).toString("base64")}`
        },
        body: new URLSearchParams({
          grant_type: "authorization_code",
          code,
          redirect_uri: redirectUri,
          code_verifier: VERIFIER,
          resource: idp.notesAudience
        })
      })
      expect(response.status, await response.clone().text()).toBe(200)
      expect(await response.json()).toMatchObject({ token_type: "Bearer", refresh_token: expect.any(String) })
    }
  })

  it("still compares the scheme, host and path: another path or a non-loopback host is refused", async () => {
    for (const redirectUri of ["http://127.0.0.1:54321/other", "http://example.test:54321/callback"]) {
      await expect(authorize(DefaultClientIds.native, redirectUri), redirectUri).rejects.toBeInstanceOf(
        DevIdpLoginError
      )
    }
  })

  it("a web client's redirect URIs match exactly: a loopback port it did not register is refused", async () => {
    await expect(authorize(DefaultClientIds.basic, "http://127.0.0.1:54321/callback")).rejects.toBeInstanceOf(
      DevIdpLoginError
    )
  })
})
