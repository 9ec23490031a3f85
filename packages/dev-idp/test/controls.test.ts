import * as oauth from "openid-client"
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest"
import { type DevIdp, startDevIdp } from "../src/index.js"
import { configFor, loginAlice, oauthError } from "./helpers.js"

describe("fault injection and counters", () => {
  let idp: DevIdp
  let config: oauth.Configuration
  let refreshToken: string

  beforeAll(async () => {
    idp = await startDevIdp()
    config = await configFor(idp, "token-broker")
  })
  beforeEach(async () => {
    idp.faults.clear()
    refreshToken = (await loginAlice(idp)).refresh_token!
    idp.counters.reset()
  })
  afterAll(() => idp.close())

  const refresh = async () => {
    const tokens = await oauth.refreshTokenGrant(config, refreshToken)
    refreshToken = tokens.refresh_token!
    return tokens
  }

  /** The refresh as raw HTTP, so a test sees the status, headers and body exactly as dev-idp sent them. */
  const send = () =>
    fetch(`${idp.issuer}/token`, {
      method: "POST",
      headers: {
        "content-type": "application/x-www-form-urlencoded",
        authorization: `Basic ${Buffer.from(`token-broker:${idp.client("token-broker").clientSecret}`).toString("base64")}`
      },
      body: new URLSearchParams({ grant_type: "refresh_token", refresh_token: refreshToken }).toString()
    })

  it("status 500 for the next request only; it is still counted", async () => {
    idp.faults.inject({ kind: "status", status: 500, count: 1 })
    expect(await oauthError(refresh())).toEqual({ error: "server_error", status: 500 })
    await refresh()
    expect(idp.counters.count({ grantType: "refresh_token" })).toBe(2)
    expect(idp.faults.active()).toEqual([])
  })

  it("rate_limit answers 429 with Retry-After", async () => {
    idp.faults.inject({ kind: "rate_limit", retryAfterSeconds: 7, count: 2 })
    for (let i = 0; i < 2; i++) {
      const response = await send()
      expect(response.status).toBe(429)
      expect(response.headers.get("retry-after")).toBe("7")
    }
    expect((await send()).status).toBe(200)
    expect(idp.counters.count({ clientId: "token-broker", grantType: "refresh_token" })).toBe(3)
  })

  it("bare_status answers the status without an OAuth error: no body, or the body given", async () => {
    idp.faults.inject({ kind: "bare_status", status: 400, count: 1, grantType: "refresh_token" })
    idp.faults.inject({
      kind: "bare_status",
      status: 401,
      body: "<html>denied</html>",
      contentType: "text/html",
      count: 1,
      grantType: "refresh_token"
    })
    const bare = await send()
    expect(bare.status).toBe(400)
    expect(bare.headers.get("content-type")).toBeNull()
    expect(await bare.text()).toBe("")
    const html = await send()
    expect(html.status).toBe(401)
    expect(html.headers.get("content-type")).toBe("text/html")
    expect(await html.text()).toBe("<html>denied</html>")
    // the refresh token was never used: it still works
    await refresh()
  })

  it("invalid_grant is answered without touching the grant", async () => {
    idp.faults.inject({ kind: "invalid_grant", count: 1 })
    expect(await oauthError(refresh())).toEqual({ error: "invalid_grant", status: 400 })
    const tokens = await refresh()
    expect(tokens.access_token).toEqual(expect.any(String))
  })

  it("latency delays the answer", async () => {
    idp.faults.inject({ kind: "latency", ms: 300, count: 1 })
    const started = performance.now()
    await refresh()
    expect(performance.now() - started).toBeGreaterThanOrEqual(290)
  })

  it("hang never answers; the client's timeout ends it and the next request works", async () => {
    idp.faults.inject({ kind: "hang", count: 1 })
    const timed = await configFor(idp, "token-broker")
    timed.timeout = 0.3
    const started = performance.now()
    await expect(oauth.refreshTokenGrant(timed, refreshToken)).rejects.toMatchObject({
      code: "OAUTH_TIMEOUT"
    })
    expect(performance.now() - started).toBeGreaterThanOrEqual(290)
    await refresh()
    expect(idp.counters.count({ grantType: "refresh_token" })).toBe(2)
  })

  it("faults filtered by grant type leave other grants alone", async () => {
    idp.faults.inject({ kind: "status", status: 503, count: 1, grantType: "client_credentials" })
    await refresh()
    expect(await oauthError(oauth.clientCredentialsGrant(config, { scope: "notes:read" }))).toEqual({
      error: "temporarily_unavailable",
      status: 503
    })
  })

  it("counts by grant type and by client", async () => {
    await refresh()
    await refresh()
    await oauth.clientCredentialsGrant(await configFor(idp, "token-broker-jwt"), { scope: "notes:read" })
    await oauth.clientCredentialsGrant(await configFor(idp, "token-broker-post"), { scope: "notes:read" })
    expect(idp.counters.count()).toBe(4)
    expect(idp.counters.count({ grantType: "refresh_token" })).toBe(2)
    expect(idp.counters.count({ grantType: "client_credentials" })).toBe(2)
    expect(idp.counters.count({ clientId: "token-broker-jwt" })).toBe(1)
    expect(idp.counters.count({ clientId: "token-broker-post", grantType: "client_credentials" })).toBe(1)
    expect(idp.counters.snapshot()).toMatchObject({
      total: 4,
      byGrantType: { refresh_token: 2, client_credentials: 2 },
      byClientId: { "token-broker": 2, "token-broker-jwt": 1, "token-broker-post": 1 }
    })
    idp.counters.reset()
    expect(idp.counters.count()).toBe(0)
  })

  it("rejects an invalid fault spec", () => {
    expect(() => idp.faults.inject({ kind: "status", status: 200, count: 1 })).toThrow()
  })
})

describe("HTTP control API", () => {
  let idp: DevIdp
  beforeAll(async () => {
    idp = await startDevIdp()
  })
  afterAll(() => idp.close())

  const control = (path: string, init: RequestInit = {}) =>
    fetch(`${idp.issuer}/__dev${path}`, {
      ...init,
      headers: init.body === undefined ? {} : { "content-type": "application/json" }
    })

  it("counters, faults, revocations, grant revocation and info over HTTP", async () => {
    const config = await configFor(idp, "token-broker")
    const tokens = await loginAlice(idp)

    const injected = await control("/faults", {
      method: "POST",
      body: JSON.stringify({ kind: "status", status: 502, count: 1, grantType: "refresh_token" })
    })
    expect(injected.status).toBe(201)
    expect(await injected.json()).toEqual([
      { fault: { kind: "status", status: 502, count: 1, grantType: "refresh_token" }, remaining: 1 }
    ])
    expect((await oauthError(oauth.refreshTokenGrant(config, tokens.refresh_token!))).status).toBe(502)

    const counters = await (await control("/counters")).json()
    expect(counters).toMatchObject({ byGrantType: { authorization_code: 1, refresh_token: 1 } })
    expect((await control("/counters/reset", { method: "POST" })).status).toBe(204)
    expect(await (await control("/counters")).json()).toMatchObject({ total: 0 })

    await control("/faults", { method: "POST", body: JSON.stringify({ kind: "hang", count: 5 }) })
    expect((await control("/faults", { method: "DELETE" })).status).toBe(204)
    expect(await (await control("/faults")).json()).toEqual([])

    const bad = await control("/faults", { method: "POST", body: JSON.stringify({ kind: "explode" }) })
    expect(bad.status).toBe(400)

    // JWT access tokens are self-contained: oidc-provider refuses to revoke them
    expect((await oauthError(oauth.tokenRevocation(config, tokens.access_token))).error).toBe(
      "unsupported_token_type"
    )
    await oauth.tokenRevocation(config, tokens.refresh_token!, { token_type_hint: "refresh_token" })
    const revocations = (await (await control("/revocations")).json()) as unknown[]
    expect(revocations).toEqual([
      expect.objectContaining({
        clientId: "token-broker",
        authMethod: "client_secret_basic",
        tokenTypeHint: "refresh_token"
      })
    ])

    const second = await loginAlice(idp)
    const revoked = await control("/grants/revoke", {
      method: "POST",
      body: JSON.stringify({ refreshToken: second.refresh_token })
    })
    expect(await revoked.json()).toEqual({ revoked: 1 })
    expect((await oauthError(oauth.refreshTokenGrant(config, second.refresh_token!))).error).toBe(
      "invalid_grant"
    )

    const info = (await (await control("/info")).json()) as {
      issuer: string
      clients: Array<{ clientId: string }>
    }
    expect(info.issuer).toBe(idp.issuer)
    expect(info.clients.map((c) => c.clientId)).toContain("token-broker-jwt")
  })

  it("is absent when controls are off", async () => {
    const quiet = await startDevIdp({ controls: false })
    try {
      expect((await fetch(`${quiet.issuer}/__dev/counters`)).status).toBe(404)
    } finally {
      await quiet.close()
    }
  })
})

describe("close()", () => {
  it("ends hanging requests and resolves", async () => {
    const idp = await startDevIdp()
    const tokens = await loginAlice(idp)
    idp.faults.inject({ kind: "hang", count: 1 })
    const config = await configFor(idp, "token-broker")
    const pending = oauth.refreshTokenGrant(config, tokens.refresh_token!)
    // the request has reached dev-idp (it counts a request on arrival, before the fault holds it)
    await vi.waitFor(() => expect(idp.counters.count({ grantType: "refresh_token" })).toBe(1), {
      timeout: 20_000,
      interval: 10
    })
    // close() resolves although a request still hangs (a close that waited for it would never end), and
    // the hanging request is ended, not left open
    await idp.close()
    await expect(pending).rejects.toThrow()
  })
})
