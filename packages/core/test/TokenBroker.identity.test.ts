import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { authorize, brokerLayer, consentAsAnotherAccount, user } from "./support/harness.js"
import { useProxiedDevIdp } from "./support/tokenProxy.js"

const dev = useProxiedDevIdp()

/** A refresh of `refreshToken` straight at dev-idp, as the broker's client: the provider's own verdict. */
const refreshAtProvider = async (refreshToken: string) => {
  const client = dev.idp.client("token-broker")
  const response = await fetch(`${dev.idp.issuer}/token`, {
    method: "POST",
    headers: {
      authorization: `Basic ${Buffer.from(`${client.clientId}:${client.clientSecret ?? ""}`).toString("base64")}`,
      "content-type": "application/x-www-form-urlencoded"
    },
    body: new URLSearchParams({ grant_type: "refresh_token", refresh_token: refreshToken })
  })
  return { status: response.status, body: (await response.json()) as { error?: string } }
}

describe("the identity check at consent (case 3)", () => {
  const layer = Layer.suspend(() =>
    brokerLayer(dev.idp, {
      provider: { internalBaseUrl: { from: dev.idp.issuer, to: dev.proxy.url } }
    })
  )

  it.live("a mismatch names what was compared and both values, and revokes the tokens it just received", () =>
    Effect.gen(function* () {
      const before = dev.idp.revocations.list().length
      const issuedBefore = dev.proxy.codeExchangeRefreshTokens().length
      const { alice, bob, error } = yield* consentAsAnotherAccount(dev.idp)
      expect(error.message).toContain(`"${alice.sub}"`)
      expect(error.message).toContain(`"${bob.sub}"`)
      expect(error.message).toContain("ID token")
      if (error._tag === "IdentityMismatch") {
        expect(error.consented).toBe(alice.sub)
        expect(error.subject).toBe(bob.sub)
      }
      // what the provider issued to this consent is dead there (RFC 7009 with client authentication)
      const issued = dev.proxy.codeExchangeRefreshTokens().slice(issuedBefore)
      expect(issued).toHaveLength(1)
      const refreshed = yield* Effect.promise(() => refreshAtProvider(issued[0] ?? ""))
      expect(refreshed).toMatchObject({ status: 400, body: { error: "invalid_grant" } })
      const revoked = dev.idp.revocations.list().slice(before)
      expect(revoked.map((r) => r.tokenTypeHint)).toContain("refresh_token")
      expect(revoked.every((r) => r.clientId === "token-broker")).toBe(true)
    }).pipe(Effect.provide(layer))
  )

  it.live("control: a consent that passes the check leaves its refresh token live at the provider", () =>
    Effect.gen(function* () {
      const alice = user(dev.idp)
      const { broker, callback } = yield* authorize(dev.idp, alice.sub, alice)
      const issuedBefore = dev.proxy.codeExchangeRefreshTokens().length
      const completed = yield* broker.completeAuthorization(callback)
      expect(completed.grant.identity).toEqual({ issuer: dev.idp.issuer, subject: alice.sub })
      const issued = dev.proxy.codeExchangeRefreshTokens().slice(issuedBefore)
      expect(issued).toHaveLength(1)
      // the broker's own token is that one; a refresh with it here works (and rotates it away)
      const refreshed = yield* Effect.promise(() => refreshAtProvider(issued[0] ?? ""))
      expect(refreshed.status).toBe(200)
    }).pipe(Effect.provide(layer))
  )
})
