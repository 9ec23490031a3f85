import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type DevIdp, startDevIdp } from "../src/index.js"
import { alice } from "./helpers.js"

const basic = (idp: DevIdp) => {
  const client = idp.client("token-broker")
  return `Basic ${Buffer.from(`${client.clientId}:${client.clientSecret ?? ""}`).toString("base64")}`
}

const tokenRequest = (idp: DevIdp, params: Record<string, string>) =>
  fetch(idp.endpoints.token, {
    method: "POST",
    headers: {
      authorization: basic(idp),
      accept: "application/json",
      "content-type": "application/x-www-form-urlencoded"
    },
    body: new URLSearchParams(params)
  })

describe("plain OAuth 2.0 mode (GitHub-style)", () => {
  let idp: DevIdp
  beforeAll(async () => {
    idp = await startDevIdp({ plainOAuth: {} })
  })
  afterAll(() => idp.close())
  const loginForNotes = () =>
    idp.login({
      clientId: "token-broker",
      username: alice(idp).username,
      password: alice(idp).password,
      scopes: ["notes:read"]
    })

  it("has no OpenID Connect discovery and no RFC 8414 metadata", async () => {
    expect(idp.plainOAuth).toBe(true)
    expect((await fetch(`${idp.issuer}/.well-known/openid-configuration`)).status).toBe(404)
    expect((await fetch(`${idp.issuer}/.well-known/oauth-authorization-server`)).status).toBe(404)
  })

  it("issues a refresh token without offline_access, no ID token, and refresh_token_expires_in", async () => {
    const tokens = await loginForNotes()
    expect(tokens.refresh_token).toEqual(expect.any(String))
    expect(tokens.id_token).toBeUndefined()
    expect(tokens.refresh_expires_in).toBeUndefined()
    expect(tokens.refresh_token_expires_in).toBeGreaterThan(0)
    const refreshed = await tokenRequest(idp, {
      grant_type: "refresh_token",
      refresh_token: tokens.refresh_token ?? ""
    })
    expect(refreshed.status).toBe(200)
    const body = (await refreshed.json()) as Record<string, unknown>
    expect(body.refresh_token).toEqual(expect.any(String))
    expect(body.refresh_token).not.toBe(tokens.refresh_token)
    expect(body.refresh_token_expires_in).toEqual(expect.any(Number))
    // the rotated-away token is refused: with status 200 and the error in the body
    const replayed = await tokenRequest(idp, {
      grant_type: "refresh_token",
      refresh_token: tokens.refresh_token ?? ""
    })
    expect(replayed.status).toBe(200)
    expect(await replayed.json()).toMatchObject({ error: "invalid_grant" })
  })

  it("has no RFC 8693 token exchange (unsupported_grant_type, status 200)", async () => {
    const answer = await tokenRequest(idp, {
      grant_type: "urn:ietf:params:oauth:grant-type:token-exchange",
      subject_token: "x",
      subject_token_type: "urn:ietf:params:oauth:token-type:access_token"
    })
    expect(answer.status).toBe(200)
    expect(await answer.json()).toMatchObject({ error: "unsupported_grant_type" })
  })

  it("GET /user names the account of an access token it issued (id, login), 401 otherwise", async () => {
    const tokens = await loginForNotes()
    const user = await fetch(idp.endpoints.userinfo, {
      headers: { authorization: `Bearer ${tokens.access_token}` }
    })
    expect(user.status).toBe(200)
    expect(await user.json()).toMatchObject({ id: alice(idp).sub, login: alice(idp).username })
    const refused = await fetch(idp.endpoints.userinfo, { headers: { authorization: "Bearer forged" } })
    expect(refused.status).toBe(401)
  })
})

describe("plain OAuth 2.0 mode with RFC 8414 metadata", () => {
  let idp: DevIdp
  beforeAll(async () => {
    idp = await startDevIdp({ plainOAuth: { metadata: "oauth-authorization-server" } })
  })
  afterAll(() => idp.close())

  it("serves /.well-known/oauth-authorization-server without token exchange or OIDC fields", async () => {
    expect((await fetch(`${idp.issuer}/.well-known/openid-configuration`)).status).toBe(404)
    const answer = await fetch(`${idp.issuer}/.well-known/oauth-authorization-server`)
    expect(answer.status).toBe(200)
    const metadata = (await answer.json()) as Record<string, unknown>
    expect(metadata).toMatchObject({
      issuer: idp.issuer,
      token_endpoint: idp.endpoints.token,
      authorization_endpoint: idp.endpoints.authorization,
      revocation_endpoint: idp.endpoints.revocation
    })
    expect(metadata.grant_types_supported).not.toContain("urn:ietf:params:oauth:grant-type:token-exchange")
    expect(metadata.userinfo_endpoint).toBeUndefined()
  })
})

describe("control: the default mode keeps OpenID Connect", () => {
  let idp: DevIdp
  beforeAll(async () => {
    idp = await startDevIdp()
  })
  afterAll(() => idp.close())

  it("serves discovery, ID tokens and refresh_expires_in, and errors with 4xx", async () => {
    expect((await fetch(`${idp.issuer}/.well-known/openid-configuration`)).status).toBe(200)
    const tokens = await idp.login({
      clientId: "token-broker",
      username: alice(idp).username,
      password: alice(idp).password,
      scopes: ["openid", "offline_access", "notes:read"]
    })
    expect(tokens.id_token).toEqual(expect.any(String))
    expect(tokens.refresh_expires_in).toBeGreaterThan(0)
    const refused = await tokenRequest(idp, { grant_type: "refresh_token", refresh_token: "unknown" })
    expect(refused.status).toBe(400)
  })
})
