import * as oauth from "openid-client"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type DevIdp, startDevIdp } from "../src/index.js"
import { alice, claims, configFor, loginAlice, oauthError, sleep } from "./helpers.js"

/** A dev-idp of its own with `options`, closed after `use`. */
const withIdp = async (
  options: Parameters<typeof startDevIdp>[0],
  use: (idp: DevIdp, config: oauth.Configuration) => Promise<void>
) => {
  const idp = await startDevIdp(options)
  try {
    await use(idp, await configFor(idp, "token-broker"))
  } finally {
    await idp.close()
  }
}

describe("refresh tokens (rotation, reuse detection, expiry)", () => {
  let idp: DevIdp
  let config: oauth.Configuration

  beforeAll(async () => {
    idp = await startDevIdp()
    config = await configFor(idp, "token-broker")
  })
  afterAll(() => idp.close())

  it("issues a refresh token with refresh_expires_in for the code exchange", async () => {
    const tokens = await loginAlice(idp)
    expect(tokens.refresh_token).toEqual(expect.any(String))
    expect(tokens.refresh_expires_in).toBeGreaterThan(30 * 24 * 60 * 60 - 5)
    expect(tokens.refresh_expires_in).toBeLessThanOrEqual(30 * 24 * 60 * 60)
  })

  it("a rotation in order is no reuse: nothing is recorded", async () => {
    const first = await loginAlice(idp)
    idp.reuses.clear()
    idp.rotations.clear()
    const second = await oauth.refreshTokenGrant(config, first.refresh_token!)
    await oauth.refreshTokenGrant(config, second.refresh_token!)
    expect(idp.reuses.list()).toEqual([])
    // both refreshes rotated, each on record by subject
    expect(idp.rotations.list().map((r) => r.subject)).toEqual([alice(idp).sub, alice(idp).sub])
  })

  it("rotates the refresh token on every use, also for a confidential client", async () => {
    const first = await loginAlice(idp)
    const seen = new Set([first.refresh_token])
    let current = first.refresh_token!
    for (let i = 0; i < 3; i++) {
      const next = await oauth.refreshTokenGrant(config, current)
      expect(next.refresh_token).toEqual(expect.any(String))
      expect(seen.has(next.refresh_token)).toBe(false)
      seen.add(next.refresh_token)
      current = next.refresh_token!
    }
    expect(seen.size).toBe(4)
  })

  it("revokes the whole grant when a rotated-away refresh token is presented again", async () => {
    const first = await loginAlice(idp)
    const second = await oauth.refreshTokenGrant(config, first.refresh_token!)
    const third = await oauth.refreshTokenGrant(config, second.refresh_token!)

    idp.reuses.clear()
    expect(await oauthError(oauth.refreshTokenGrant(config, first.refresh_token!))).toEqual({
      error: "invalid_grant",
      status: 400
    })
    // the reuse is on record, by subject and client, without the token
    expect(idp.reuses.list()).toEqual([
      { subject: alice(idp).sub, clientId: "token-broker", endpoint: "token", at: expect.any(Number) }
    ])
    // the newest token belonged to the same grant: it is gone too
    expect((await oauthError(oauth.refreshTokenGrant(config, third.refresh_token!))).error).toBe(
      "invalid_grant"
    )
  })

  it("a revocation of a rotated-away refresh token is a reuse on record, and revokes the whole grant by default", async () => {
    const live = () => idp.liveRefreshTokens({ subject: alice(idp).sub, clientId: "token-broker" })
    const before = live()
    const first = await loginAlice(idp)
    const second = await oauth.refreshTokenGrant(config, first.refresh_token!)
    expect(live()).toBe(before + 1)
    idp.reuses.clear()
    await oauth.tokenRevocation(config, first.refresh_token!, { token_type_hint: "refresh_token" })
    expect(idp.reuses.list()).toEqual([
      { subject: alice(idp).sub, clientId: "token-broker", endpoint: "revocation", at: expect.any(Number) }
    ])
    expect((await oauthError(oauth.refreshTokenGrant(config, second.refresh_token!))).error).toBe(
      "invalid_grant"
    )
    expect(live()).toBe(before)
  })

  it("a lookup by the test controls is no reuse", async () => {
    const first = await loginAlice(idp)
    await oauth.refreshTokenGrant(config, first.refresh_token!)
    idp.reuses.clear()
    expect(await idp.revokeGrantOf({ refreshToken: first.refresh_token! })).toBe(1)
    expect(idp.reuses.list()).toEqual([])
  })

  it("with consumedRefreshTokenRevocation ignored, revoking a rotated-away refresh token revokes nothing: the successor still refreshes until it is revoked", async () => {
    await withIdp({ consumedRefreshTokenRevocation: "ignored" }, async (strict, strictConfig) => {
      const first = await loginAlice(strict)
      const second = await oauth.refreshTokenGrant(strictConfig, first.refresh_token!)
      const sub = alice(strict).sub
      const live = strict.liveRefreshTokens({ subject: sub })
      await oauth.tokenRevocation(strictConfig, first.refresh_token!, { token_type_hint: "refresh_token" })
      expect(strict.reuses.list().map((r) => r.endpoint)).toEqual(["revocation"])
      expect(strict.liveRefreshTokens({ subject: sub })).toBe(live)
      const third = await oauth.refreshTokenGrant(strictConfig, second.refresh_token!)
      await oauth.tokenRevocation(strictConfig, third.refresh_token!, { token_type_hint: "refresh_token" })
      expect(strict.liveRefreshTokens({ subject: sub })).toBe(0)
      expect((await oauthError(oauth.refreshTokenGrant(strictConfig, third.refresh_token!))).error).toBe(
        "invalid_grant"
      )
    })
  })

  describe("after_commit faults: the rotation commits, then the answer is lost or spoiled", () => {
    /** A raw refresh request of the token-broker client (openid-client would reject spoiled answers). */
    const rawRefresh = async (refreshToken: string) => {
      const client = idp.client("token-broker")
      const basic = Buffer.from(`${client.clientId}:${client.clientSecret}`).toString("base64")
      const response = await fetch(`${idp.issuer}/token`, {
        method: "POST",
        headers: { authorization: `Basic ${basic}`, "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ grant_type: "refresh_token", refresh_token: refreshToken })
      })
      return { status: response.status, text: await response.text() }
    }

    it.each(["status", "non_json", "drop"] as const)(
      "%s: the client gets no usable answer, yet the presented token was consumed",
      async (answer) => {
        const first = await loginAlice(idp)
        idp.rotations.clear()
        idp.faults.inject({ kind: "after_commit", answer, grantType: "refresh_token" })
        if (answer === "drop") {
          await expect(rawRefresh(first.refresh_token!)).rejects.toThrow()
        } else {
          const spoiled = await rawRefresh(first.refresh_token!)
          if (answer === "status") {
            expect(spoiled.status).toBe(502)
            expect(JSON.parse(spoiled.text)).toMatchObject({ error: "server_error" })
          } else {
            expect(spoiled.status).toBe(200)
            expect(() => JSON.parse(spoiled.text)).toThrow()
          }
        }
        expect(idp.faults.active()).toEqual([])
        // the rotation happened, though its answer was lost
        expect(idp.rotations.list()).toHaveLength(1)
        // presenting it again is reuse: refused, and the grant (with the lost successor) revoked
        expect(await oauthError(oauth.refreshTokenGrant(config, first.refresh_token!))).toEqual({
          error: "invalid_grant",
          status: 400
        })
      }
    )

    it("json_invalid: a 2xx a client library rejects, still carrying the working successor", async () => {
      const first = await loginAlice(idp)
      idp.faults.inject({ kind: "after_commit", answer: "json_invalid", grantType: "refresh_token" })
      const spoiled = await rawRefresh(first.refresh_token!)
      expect(spoiled.status).toBe(200)
      const body = JSON.parse(spoiled.text) as { token_type?: string; refresh_token?: string }
      expect(body.token_type).toBe("x-unknown")
      expect(body.refresh_token).toEqual(expect.any(String))
      expect(body.refresh_token).not.toBe(first.refresh_token)
      // the successor in the spoiled body is the live one
      const next = await oauth.refreshTokenGrant(config, body.refresh_token!)
      expect(next.refresh_token).toEqual(expect.any(String))
    })

    it("an openid-client refresh of a json_invalid answer fails, though the token rotated", async () => {
      const first = await loginAlice(idp)
      idp.faults.inject({ kind: "after_commit", answer: "json_invalid", grantType: "refresh_token" })
      await expect(oauth.refreshTokenGrant(config, first.refresh_token!)).rejects.toThrow()
      expect((await oauthError(oauth.refreshTokenGrant(config, first.refresh_token!))).error).toBe(
        "invalid_grant"
      )
    })
  })

  it("narrows the access token's scope on a refresh with scope, while the grant keeps its full scope", async () => {
    const first = await loginAlice(idp)
    expect(claims(first.access_token).scope).toBe("notes:read notes:write")

    const narrowed = await oauth.refreshTokenGrant(config, first.refresh_token!, { scope: "notes:read" })
    expect(claims(narrowed.access_token).scope).toBe("notes:read")
    expect(narrowed.scope).toBe("notes:read")

    const full = await oauth.refreshTokenGrant(config, narrowed.refresh_token!)
    expect(claims(full.access_token).scope).toBe("notes:read notes:write")
  })

  it("refuses a refresh with a scope beyond the grant (invalid_scope)", async () => {
    const first = await loginAlice(idp, { scopes: ["openid", "offline_access", "notes:read"] })
    expect(claims(first.access_token).scope).toBe("notes:read")
    const failure = await oauthError(
      oauth.refreshTokenGrant(config, first.refresh_token!, { scope: "notes:write" })
    )
    expect(failure.error).toBe("invalid_scope")
  })

  it("issues the access token for another granted resource when the refresh names it", async () => {
    const first = await loginAlice(idp)
    expect(claims(first.access_token).aud).toBe(idp.notesAudience)
    const failure = await oauthError(
      oauth.refreshTokenGrant(config, first.refresh_token!, { resource: "https://not-granted.example/" })
    )
    expect(failure.error).toBe("invalid_target")
  })

  it("rejects a refresh token of another client", async () => {
    const first = await loginAlice(idp)
    const other = await configFor(idp, "token-broker-post")
    expect((await oauthError(oauth.refreshTokenGrant(other, first.refresh_token!))).error).toBe(
      "invalid_grant"
    )
  })
})

describe("refresh-token reuse grace period", () => {
  let idp: DevIdp
  let config: oauth.Configuration

  beforeAll(async () => {
    idp = await startDevIdp({ refreshTokenReuseGraceSeconds: 1 })
    config = await configFor(idp, "token-broker")
  })
  afterAll(() => idp.close())

  it("within the grace period a reused token gets a new pair; after it, reuse revokes the grant", async () => {
    const first = await loginAlice(idp)
    idp.reuses.clear()
    const second = await oauth.refreshTokenGrant(config, first.refresh_token!)
    const replay = await oauth.refreshTokenGrant(config, first.refresh_token!)
    // a replay within the grace period is not recorded as a reuse
    expect(idp.reuses.list()).toEqual([])
    expect(replay.refresh_token).not.toBe(second.refresh_token)
    expect(replay.refresh_token).not.toBe(first.refresh_token)
    // the grant is intact: the token from the first rotation still works
    const third = await oauth.refreshTokenGrant(config, second.refresh_token!)

    await sleep(1_100)
    expect((await oauthError(oauth.refreshTokenGrant(config, first.refresh_token!))).error).toBe(
      "invalid_grant"
    )
    expect((await oauthError(oauth.refreshTokenGrant(config, third.refresh_token!))).error).toBe(
      "invalid_grant"
    )
  })
})

describe.concurrent("refresh-token expiry", () => {
  it("enforces the absolute lifetime across rotations, with refresh_expires_in counting down", async () => {
    await withIdp({ refreshTokenTtlSeconds: 3 }, async (idp, config) => {
      const first = await loginAlice(idp)
      expect(first.refresh_expires_in).toBeLessThanOrEqual(3)
      expect(first.refresh_expires_in).toBeGreaterThanOrEqual(2)
      await sleep(1_100)
      const second = await oauth.refreshTokenGrant(config, first.refresh_token!)
      expect(second.refresh_expires_in).toBeLessThan(first.refresh_expires_in!)
      expect(second.refresh_expires_in).toBeGreaterThan(0)
      await sleep(2_100)
      const failure = await oauthError(oauth.refreshTokenGrant(config, second.refresh_token!))
      expect(failure.error).toBe("invalid_grant")
    })
  })

  it("enforces the idle expiry: each use extends it, a pause longer than it ends the grant", async () => {
    // dev-idp runs on the real clock: the idle window is wide enough for a loaded machine between the
    // login and the refresh that must still be inside it
    await withIdp({ refreshTokenIdleSeconds: 5 }, async (idp, config) => {
      const first = await loginAlice(idp)
      expect(first.refresh_expires_in).toBe(5)
      await sleep(1_100)
      const second = await oauth.refreshTokenGrant(config, first.refresh_token!)
      expect(second.refresh_expires_in).toBe(5)
      await sleep(5_100)
      expect((await oauthError(oauth.refreshTokenGrant(config, second.refresh_token!))).error).toBe(
        "invalid_grant"
      )
    })
  })
})
