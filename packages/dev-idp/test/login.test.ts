import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type DevIdp, DevIdpLoginError, startDevIdp } from "../src/index.js"
import { alice } from "./helpers.js"

describe("headless login driver", () => {
  let idp: DevIdp
  beforeAll(async () => {
    idp = await startDevIdp({
      users: [
        { sub: "sub-carol", username: "carol", password: "carol-dev-password", email: "carol@example.test" }
      ]
    })
  })
  afterAll(() => idp.close())

  const authorizationUrl = (extra: Record<string, string> = {}) => {
    const url = new URL(`${idp.issuer}/auth`)
    url.search = new URLSearchParams({
      client_id: "token-broker",
      response_type: "code",
      redirect_uri: idp.client("token-broker").redirectUris[0]!,
      scope: "openid notes:read",
      state: "state-123",
      code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
      code_challenge_method: "S256",
      ...extra
    }).toString()
    return url.href
  }

  it("returns the callback URL with code, state and iss without calling it", async () => {
    const callback = await idp.driveAuthorization(authorizationUrl(), {
      username: "carol",
      password: "carol-dev-password"
    })
    expect(`${callback.origin}${callback.pathname}`).toBe(idp.client("token-broker").redirectUris[0])
    expect(callback.searchParams.get("code")).toEqual(expect.any(String))
    expect(callback.searchParams.get("state")).toBe("state-123")
    expect(callback.searchParams.get("iss")).toBe(idp.issuer)
  })

  it("fails clearly on a wrong password and on an unknown user", async () => {
    for (const credentials of [
      { username: "carol", password: "wrong" },
      { username: "mallory", password: "carol-dev-password" }
    ]) {
      const failure = await idp
        .driveAuthorization(authorizationUrl(), credentials)
        .catch((error: unknown) => error)
      expect(failure).toBeInstanceOf(DevIdpLoginError)
      expect(failure).toMatchObject({ code: "invalid_credentials" })
    }
  })

  it("denying consent yields access_denied at the callback", async () => {
    const callback = await idp.driveAuthorization(authorizationUrl(), {
      username: "carol",
      password: "carol-dev-password",
      consent: false
    })
    expect(callback.searchParams.get("error")).toBe("access_denied")
  })

  it("reports an error page (unknown client) as authorization_error", async () => {
    const failure = await idp
      .driveAuthorization(authorizationUrl({ client_id: "nobody" }), { username: "carol", password: "x" })
      .catch((error: unknown) => error)
    expect(failure).toMatchObject({ code: "authorization_error", error: "invalid_client" })
  })

  it("login() returns tokens with the configured user's claims; default users are replaced", async () => {
    expect(idp.users.map((u) => u.username)).toEqual(["carol"])
    expect(alice(idp)).toBeUndefined()
    const tokens = await idp.login({
      clientId: "token-broker-post",
      username: "carol",
      password: "carol-dev-password",
      scopes: ["openid", "email", "offline_access", "notes:read"]
    })
    expect(tokens.refresh_token).toEqual(expect.any(String))
    expect(tokens.scope).toBe("notes:read")
    const idToken = JSON.parse(
      Buffer.from(tokens.id_token!.split(".")[1]!, "base64url").toString()
    ) as Record<string, unknown>
    expect(idToken.sub).toBe("sub-carol")
  })

  it("login() without offline_access issues no refresh token", async () => {
    const tokens = await idp.login({
      clientId: "token-broker",
      username: "carol",
      password: "carol-dev-password",
      scopes: ["openid", "notes:read"]
    })
    expect(tokens.refresh_token).toBeUndefined()
    expect(tokens.refresh_expires_in).toBeUndefined()
  })

  it("rejects invalid options naming the field", async () => {
    await expect(startDevIdp({ accessTokenTtlSeconds: -1 })).rejects.toThrow(/accessTokenTtlSeconds/)
  })
})
