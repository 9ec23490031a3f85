import * as oauth from "openid-client"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type DevIdp, startDevIdp } from "../src/index.js"
import { alice, claims, configFor, header, loginAlice, oauthError } from "./helpers.js"

const TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
const ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"

describe("protocol surface", () => {
  let idp: DevIdp
  let broker: oauth.Configuration

  beforeAll(async () => {
    idp = await startDevIdp({ mcpAudience: "http://127.0.0.1:1/mcp" })
    broker = await configFor(idp, "token-broker")
  })
  afterAll(() => idp.close())

  it("publishes discovery with every endpoint and grant type a broker needs", () => {
    const metadata = broker.serverMetadata()
    expect(metadata.issuer).toBe(idp.issuer)
    expect(metadata.revocation_endpoint).toBe(`${idp.issuer}/token/revocation`)
    expect(metadata.introspection_endpoint).toBe(`${idp.issuer}/token/introspection`)
    expect(metadata.registration_endpoint).toBe(`${idp.issuer}/reg`)
    expect(metadata.grant_types_supported).toEqual(
      expect.arrayContaining(["authorization_code", "refresh_token", "client_credentials", TOKEN_EXCHANGE])
    )
    expect(metadata.code_challenge_methods_supported).toEqual(["S256"])
  })

  it("issues JWT access tokens typed at+jwt for the notes audience by default, and ID tokens", async () => {
    const tokens = await loginAlice(idp)
    expect(header(tokens.access_token).typ).toBe("at+jwt")
    const at = claims(tokens.access_token)
    expect(at).toMatchObject({
      iss: idp.issuer,
      aud: idp.notesAudience,
      sub: alice(idp).sub,
      client_id: "token-broker",
      scope: "notes:read notes:write"
    })
    expect(at.exp! - at.iat!).toBe(300)
    expect(claims(tokens.id_token!)).toMatchObject({
      iss: idp.issuer,
      aud: "token-broker",
      sub: alice(idp).sub
    })
  })

  describe("client authentication methods", () => {
    for (const clientId of ["token-broker", "token-broker-post", "token-broker-jwt"]) {
      it(`${clientId}: code exchange and refresh with its own authentication method`, async () => {
        const config = await configFor(idp, clientId)
        const tokens = await loginAlice(idp, { clientId })
        const before = idp.counters.count({ clientId, grantType: "refresh_token" })
        const refreshed = await oauth.refreshTokenGrant(config, tokens.refresh_token!)
        expect(claims(refreshed.access_token).client_id).toBe(clientId)
        expect(idp.counters.count({ clientId, grantType: "refresh_token" })).toBe(before + 1)
      })
    }

    it("rejects a wrong client secret with invalid_client", async () => {
      const wrong = await oauth.discovery(
        new URL(idp.issuer),
        "token-broker",
        undefined,
        oauth.ClientSecretBasic("not-the-secret-at-all"),
        { execute: [oauth.allowInsecureRequests] }
      )
      expect(await oauthError(oauth.clientCredentialsGrant(wrong, { scope: "notes:read" }))).toEqual({
        error: "invalid_client",
        status: 401
      })
    })
  })

  it("public client: authorization code with PKCE through openid-client, refresh rotates", async () => {
    const config = await configFor(idp, "mcp-client")
    const verifier = oauth.randomPKCECodeVerifier()
    const state = oauth.randomState()
    const nonce = oauth.randomNonce()
    const url = oauth.buildAuthorizationUrl(config, {
      redirect_uri: idp.client("mcp-client").redirectUris[0]!,
      scope: "openid offline_access notes:read",
      code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
      code_challenge_method: "S256",
      state,
      nonce,
      prompt: "consent"
    })
    const callback = await idp.driveAuthorization(url.href, {
      username: alice(idp).username,
      password: alice(idp).password
    })
    expect(callback.searchParams.get("iss")).toBe(idp.issuer)
    const tokens = await oauth.authorizationCodeGrant(config, callback, {
      pkceCodeVerifier: verifier,
      expectedState: state,
      expectedNonce: nonce
    })
    expect(tokens.claims()?.sub).toBe(alice(idp).sub)
    expect(claims(tokens.access_token).scope).toBe("notes:read")
    const refreshed = await oauth.refreshTokenGrant(config, tokens.refresh_token!)
    expect(refreshed.refresh_token).not.toBe(tokens.refresh_token)
  })

  it("public client without PKCE is refused at the authorization endpoint", async () => {
    const url = new URL(`${idp.issuer}/auth`)
    url.search = new URLSearchParams({
      client_id: "mcp-client",
      response_type: "code",
      redirect_uri: idp.client("mcp-client").redirectUris[0]!,
      scope: "openid"
    }).toString()
    const callback = await idp.driveAuthorization(url.href, {
      username: alice(idp).username,
      password: alice(idp).password
    })
    expect(callback.searchParams.get("error")).toBe("invalid_request")
    expect(callback.searchParams.get("error_description")).toMatch(/PKCE/)
  })

  describe("RFC 8693 token exchange", () => {
    it("exchanges a user's access token for a downscoped token for the named audience, without refresh token", async () => {
      const subject = await loginAlice(idp)
      const exchanged = await oauth.genericGrantRequest(broker, TOKEN_EXCHANGE, {
        subject_token: subject.access_token,
        subject_token_type: ACCESS_TOKEN,
        requested_token_type: ACCESS_TOKEN,
        audience: idp.notesAudience,
        scope: "notes:read"
      })
      expect(exchanged.issued_token_type).toBe(ACCESS_TOKEN)
      expect(exchanged.token_type).toBe("bearer")
      expect(exchanged.expires_in).toBe(300)
      expect(exchanged.scope).toBe("notes:read")
      expect(exchanged.refresh_token).toBeUndefined()
      expect(header(exchanged.access_token).typ).toBe("at+jwt")
      const at = claims(exchanged.access_token)
      expect(at).toMatchObject({
        sub: alice(idp).sub,
        aud: idp.notesAudience,
        scope: "notes:read",
        iss: idp.issuer
      })
      expect(at.act).toBeUndefined()
    })

    it("exchanges an MCP-audience token for a notes token via resource, adding act from an actor token", async () => {
      const subject = await loginAlice(idp, { resource: idp.mcpAudience! })
      expect(claims(subject.access_token).aud).toBe(idp.mcpAudience)
      const actor = await oauth.clientCredentialsGrant(broker, { scope: "notes:read" })
      expect(claims(actor.access_token).sub).toBe("token-broker")

      const exchanged = await oauth.genericGrantRequest(broker, TOKEN_EXCHANGE, {
        subject_token: subject.access_token,
        subject_token_type: ACCESS_TOKEN,
        actor_token: actor.access_token,
        actor_token_type: ACCESS_TOKEN,
        resource: idp.notesAudience,
        scope: "notes:read notes:write"
      })
      expect(claims(exchanged.access_token)).toMatchObject({
        sub: alice(idp).sub,
        aud: idp.notesAudience,
        scope: "notes:read notes:write",
        act: { sub: "token-broker" }
      })
    })

    it("refuses a scope beyond the subject token's scope with invalid_scope", async () => {
      const subject = await loginAlice(idp, { scopes: ["openid", "notes:read"] })
      const failure = await oauthError(
        oauth.genericGrantRequest(broker, TOKEN_EXCHANGE, {
          subject_token: subject.access_token,
          subject_token_type: ACCESS_TOKEN,
          audience: idp.notesAudience,
          scope: "notes:read notes:write"
        })
      )
      expect(failure).toEqual({ error: "invalid_scope", status: 400 })
    })

    it("refuses bad subject tokens: garbage, a tampered JWT, an ID token", async () => {
      const tokens = await loginAlice(idp)
      const [h, p] = tokens.access_token.split(".")
      const tampered = `${h}.${p}.${"A".repeat(342)}`
      for (const subject_token of ["not-a-token", tampered, tokens.id_token!]) {
        const failure = await oauthError(
          oauth.genericGrantRequest(broker, TOKEN_EXCHANGE, {
            subject_token,
            subject_token_type: ACCESS_TOKEN,
            audience: idp.notesAudience
          })
        )
        expect(failure.error).toBe("invalid_grant")
      }
    })

    it("refuses an unknown audience and an unsupported token type", async () => {
      const tokens = await loginAlice(idp)
      expect(
        (
          await oauthError(
            oauth.genericGrantRequest(broker, TOKEN_EXCHANGE, {
              subject_token: tokens.access_token,
              subject_token_type: ACCESS_TOKEN,
              audience: "https://unknown.example/api"
            })
          )
        ).error
      ).toBe("invalid_target")
      expect(
        (
          await oauthError(
            oauth.genericGrantRequest(broker, TOKEN_EXCHANGE, {
              subject_token: tokens.access_token,
              subject_token_type: "urn:ietf:params:oauth:token-type:id_token",
              audience: idp.notesAudience
            })
          )
        ).error
      ).toBe("invalid_request")
    })

    it("exchanges for the opaque resource; the result can be introspected (with act)", async () => {
      const subject = await loginAlice(idp)
      const actor = await oauth.clientCredentialsGrant(broker, {
        scope: "notes:read",
        resource: idp.opaqueAudience
      })
      const exchanged = await oauth.genericGrantRequest(broker, TOKEN_EXCHANGE, {
        subject_token: subject.access_token,
        subject_token_type: ACCESS_TOKEN,
        actor_token: actor.access_token,
        actor_token_type: ACCESS_TOKEN,
        resource: idp.opaqueAudience,
        scope: "notes:read"
      })
      expect(exchanged.access_token.split(".")).toHaveLength(1)
      const introspected = await oauth.tokenIntrospection(broker, exchanged.access_token)
      expect(introspected).toMatchObject({
        active: true,
        sub: alice(idp).sub,
        aud: idp.opaqueAudience,
        scope: "notes:read",
        client_id: "token-broker",
        act: { sub: "token-broker" }
      })
    })
  })

  describe("RFC 7662 introspection and RFC 7009 revocation", () => {
    it("introspects an opaque access token and a refresh token", async () => {
      const tokens = await loginAlice(idp, { resource: idp.opaqueAudience })
      expect(tokens.access_token.split(".")).toHaveLength(1)
      const at = await oauth.tokenIntrospection(broker, tokens.access_token)
      expect(at).toMatchObject({
        active: true,
        sub: alice(idp).sub,
        client_id: "token-broker",
        aud: idp.opaqueAudience,
        scope: "notes:read notes:write",
        token_type: "Bearer",
        iss: idp.issuer
      })
      const rt = await oauth.tokenIntrospection(broker, tokens.refresh_token!, {
        token_type_hint: "refresh_token"
      })
      expect(rt.active).toBe(true)
      expect(rt.scope).toContain("offline_access")
      expect((await oauth.tokenIntrospection(broker, "unknown-token")).active).toBe(false)
    })

    for (const clientId of ["token-broker", "token-broker-post", "token-broker-jwt"]) {
      it(`${clientId}: revocation is recorded (never the token) and the refresh token then fails`, async () => {
        const config = await configFor(idp, clientId)
        const tokens = await loginAlice(idp, { clientId })
        idp.revocations.clear()
        await oauth.tokenRevocation(config, tokens.refresh_token!, { token_type_hint: "refresh_token" })
        const records = idp.revocations.list()
        expect(records).toHaveLength(1)
        expect(records[0]).toMatchObject({
          clientId,
          authMethod: idp.client(clientId).tokenEndpointAuthMethod,
          tokenTypeHint: "refresh_token"
        })
        expect(JSON.stringify(records)).not.toContain(tokens.refresh_token!)
        expect((await oauthError(oauth.refreshTokenGrant(config, tokens.refresh_token!))).error).toBe(
          "invalid_grant"
        )
      })
    }

    it("revoking an opaque access token makes it inactive", async () => {
      const tokens = await loginAlice(idp, { resource: idp.opaqueAudience })
      await oauth.tokenRevocation(broker, tokens.access_token)
      expect((await oauth.tokenIntrospection(broker, tokens.access_token)).active).toBe(false)
    })
  })

  it("revokeGrantOf revokes a user's grant server-side (by refresh token and by subject)", async () => {
    const one = await loginAlice(idp)
    const two = await loginAlice(idp)
    expect(await idp.revokeGrantOf({ refreshToken: one.refresh_token! })).toBe(1)
    expect((await oauthError(oauth.refreshTokenGrant(broker, one.refresh_token!))).error).toBe(
      "invalid_grant"
    )
    const stillThere = await oauth.refreshTokenGrant(broker, two.refresh_token!)
    expect(
      await idp.revokeGrantOf({ subject: alice(idp).sub, clientId: "token-broker" })
    ).toBeGreaterThanOrEqual(1)
    expect((await oauthError(oauth.refreshTokenGrant(broker, stillThere.refresh_token!))).error).toBe(
      "invalid_grant"
    )
    expect(await idp.revokeGrantOf({ refreshToken: "unknown" })).toBe(0)
  })

  it("client credentials: a JWT for the notes audience whose subject is the client", async () => {
    const tokens = await oauth.clientCredentialsGrant(broker, { scope: "notes:read" })
    expect(claims(tokens.access_token)).toMatchObject({
      sub: "token-broker",
      aud: idp.notesAudience,
      scope: "notes:read"
    })
    expect(tokens.refresh_token).toBeUndefined()
  })

  it("dynamic client registration: a public client registers and logs a user in", async () => {
    const redirect = `${idp.issuer}/__dev/callback`
    const config = await oauth.dynamicClientRegistration(
      new URL(idp.issuer),
      {
        redirect_uris: [redirect],
        token_endpoint_auth_method: "none",
        grant_types: ["authorization_code", "refresh_token"],
        response_types: ["code"]
      },
      oauth.None(),
      { execute: [oauth.allowInsecureRequests] }
    )
    const clientId = config.clientMetadata().client_id
    expect(clientId).toEqual(expect.any(String))
    const verifier = oauth.randomPKCECodeVerifier()
    const url = oauth.buildAuthorizationUrl(config, {
      redirect_uri: redirect,
      scope: "openid offline_access notes:read",
      code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
      code_challenge_method: "S256",
      prompt: "consent"
    })
    const callback = await idp.driveAuthorization(url, {
      username: alice(idp).username,
      password: alice(idp).password
    })
    const tokens = await oauth.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier })
    expect(claims(tokens.access_token).client_id).toBe(clientId)
    expect(tokens.refresh_token).toEqual(expect.any(String))
  })
})
