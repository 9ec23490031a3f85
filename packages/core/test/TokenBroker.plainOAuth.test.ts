import { describe, expect, it } from "@effect/vitest"
import type { DevIdp } from "@token-broker/dev-idp"
import { Effect, Layer, Option } from "effect"
import { AuthorizationServer, type ProviderConfig, TokenBroker } from "../src/index.js"
import {
  brokerLayer,
  connect,
  consentAsAnotherAccount,
  PROVIDER,
  providerConfig,
  useDevIdp,
  user
} from "./support/harness.js"
import { useProxiedDevIdp } from "./support/tokenProxy.js"

/** dev-idp as GitHub is configured: no discovery (or RFC 8414 only), no ID token, no offline scope. */
const plainProvider = (
  idp: DevIdp,
  discovery: "none" | "oauth-authorization-server"
): Partial<ProviderConfig> => {
  const { authorization, token, revocation, userinfo } = idp.endpoints
  return {
    discovery,
    endpoints: discovery === "none" ? { authorization, token, revocation, userinfo } : { userinfo },
    offlineAccessScope: null,
    userinfoSubjectField: "id",
    identityBinding: "same-subject",
    tokenExchange: undefined
  }
}

for (const discovery of ["none", "oauth-authorization-server"] as const) {
  describe(`a plain OAuth 2.0 provider, GitHub-style (discovery: ${discovery}) (case 8)`, () => {
    const dev = useDevIdp({ plainOAuth: { metadata: discovery } })
    const layer = Layer.suspend(() => brokerLayer(dev.idp, { provider: plainProvider(dev.idp, discovery) }))

    it.effect("the authorization URL asks no openid, no offline scope, no nonce and no prompt", () =>
      Effect.gen(function* () {
        const broker = yield* TokenBroker.TokenBroker
        const started = yield* broker.startAuthorization({ subject: user(dev.idp).sub, provider: PROVIDER })
        const params = started.authorizationUrl.searchParams
        expect(`${started.authorizationUrl.origin}${started.authorizationUrl.pathname}`).toBe(
          dev.idp.endpoints.authorization
        )
        expect(params.get("scope")?.split(" ").sort()).toEqual(["notes:read", "notes:write"])
        expect(params.has("nonce")).toBe(false)
        expect(params.has("prompt")).toBe(false)
        expect(params.get("code_challenge_method")).toBe("S256")
      }).pipe(Effect.provide(layer))
    )

    it.live(
      "consent (identity from the userinfo endpoint), background token, rotation, refused refresh -> re-consent, revoke",
      () =>
        Effect.gen(function* () {
          const alice = user(dev.idp)
          const broker = yield* TokenBroker.TokenBroker
          const completed = yield* connect(dev.idp, alice)
          expect(completed.grant.status).toBe("active")
          expect(completed.grant.identity).toEqual({ issuer: dev.idp.issuer, subject: alice.sub })
          // refresh_token_expires_in, not refresh_expires_in
          expect(completed.grant.refreshTokenExpiresAt).toBeGreaterThan(Date.now())
          const first = yield* broker.backgroundToken({ subject: alice.sub, provider: PROVIDER })
          expect(first.source).toBe("store")
          // rotation: each refresh rotates; no rotated-away token is ever presented again
          dev.idp.reuses.clear()
          const rotated = yield* broker.rotateRefreshToken({ subject: alice.sub, provider: PROVIDER })
          const again = yield* broker.rotateRefreshToken({ subject: alice.sub, provider: PROVIDER })
          expect(again.version).toBeGreaterThan(rotated.version)
          expect(again.refreshTokenExpiresAt).toEqual(expect.any(Number))
          expect(
            dev.idp.rotations.list().filter((r) => r.subject === alice.sub).length
          ).toBeGreaterThanOrEqual(2)
          expect(dev.idp.reuses.list()).toEqual([])
          const fresh = yield* broker.backgroundToken({ subject: alice.sub, provider: PROVIDER })
          expect(fresh.source).toBe("cache")
          // refused refresh, answered with status 200 and the error in the body: consent again
          expect(yield* Effect.promise(() => dev.idp.revokeGrantOf({ subject: alice.sub }))).toBeGreaterThan(
            0
          )
          const refused = yield* Effect.flip(
            broker.rotateRefreshToken({ subject: alice.sub, provider: PROVIDER })
          )
          expect(refused._tag).toBe("ConsentRequired")
          if (refused._tag === "ConsentRequired") expect(refused.reason).toBe("invalid_grant")
          const marked = Option.getOrThrow(
            yield* broker.grantStatus({ subject: alice.sub, provider: PROVIDER })
          )
          expect(marked.status).toBe("reconsent_required")
          const healed = yield* connect(dev.idp, alice)
          expect(healed.grant.status).toBe("active")
          expect((yield* broker.rotateRefreshToken({ subject: alice.sub, provider: PROVIDER })).status).toBe(
            "active"
          )
          // revoke: RFC 7009 at the configured (or RFC 8414) revocation endpoint
          const before = dev.idp.revocations.list().length
          expect(yield* broker.revoke({ subject: alice.sub, provider: PROVIDER })).toMatchObject({
            removed: true,
            upstream: "revoked"
          })
          expect(dev.idp.revocations.list().length).toBeGreaterThan(before)
        }).pipe(Effect.provide(layer))
    )

    it.live("another account's consent is refused, naming the userinfo field and both values", () =>
      Effect.gen(function* () {
        const { alice, bob, error } = yield* consentAsAnotherAccount(dev.idp)
        expect(error.message).toContain('userinfo field "id"')
        expect(error.message).toContain(`"${alice.sub}"`)
        expect(error.message).toContain(`"${bob.sub}"`)
      }).pipe(Effect.provide(layer))
    )
  })
}

describe("control: the OpenID Connect configuration against plain mode fails at discovery", () => {
  const dev = useDevIdp({ plainOAuth: {} })

  it.effect("no discovery document: the authorization URL cannot be built", () =>
    Effect.gen(function* () {
      const broker = yield* TokenBroker.TokenBroker
      const error = yield* Effect.flip(
        broker.startAuthorization({ subject: user(dev.idp).sub, provider: PROVIDER })
      )
      expect(error._tag).toBe("UpstreamRejected")
    }).pipe(Effect.provide(Layer.suspend(() => brokerLayer(dev.idp))))
  )
})

describe("plain OAuth 2.0 settings are checked when the clients are built", () => {
  const dev = useDevIdp({ plainOAuth: {} })
  const build = (overrides: Partial<ProviderConfig>) =>
    Effect.flip(
      AuthorizationServer.make([providerConfig(dev.idp, { tokenExchange: undefined, ...overrides })])
    )

  it.effect("discovery none without a token endpoint names the field", () =>
    Effect.gen(function* () {
      const error = yield* build({
        discovery: "none",
        endpoints: { authorization: dev.idp.endpoints.authorization }
      })
      expect(error.field).toBe("providers[0].endpoints.token")
    })
  )

  it.effect("no ID token and same-subject without a userinfo endpoint says what to do", () =>
    Effect.gen(function* () {
      const error = yield* build({
        discovery: "none",
        endpoints: { authorization: dev.idp.endpoints.authorization, token: dev.idp.endpoints.token }
      })
      expect(error.field).toBe("providers[0].identityBinding")
      expect(error.message).toContain("endpoints.userinfo")
      expect(error.message).toContain("identityBinding: any")
      // control: with `any` the same provider is accepted
      const accepted = yield* Effect.either(
        AuthorizationServer.make([
          providerConfig(dev.idp, {
            tokenExchange: undefined,
            discovery: "none",
            identityBinding: "any",
            endpoints: { authorization: dev.idp.endpoints.authorization, token: dev.idp.endpoints.token }
          })
        ])
      )
      expect(accepted._tag).toBe("Right")
    })
  )

  it.effect("a reserved authorization parameter is refused, an extra one is accepted", () =>
    Effect.gen(function* () {
      for (const name of [
        "client_id",
        "redirect_uri",
        "code_challenge",
        "state",
        "nonce",
        "scope",
        "response_type"
      ]) {
        const error = yield* build({ authorizationParameters: { access_type: "offline", [name]: "x" } })
        expect(error.field).toBe(`providers[0].authorizationParameters.${name}`)
        expect(error.message).toContain(`"${name}"`)
      }
      const accepted = yield* Effect.either(
        AuthorizationServer.make([
          providerConfig(dev.idp, { authorizationParameters: { access_type: "offline" } })
        ])
      )
      expect(accepted._tag).toBe("Right")
    })
  )

  it.effect("an endpoint that is not a URL names its field", () =>
    Effect.gen(function* () {
      const error = yield* build({ endpoints: { revocation: "not a url" } })
      expect(error.field).toBe("providers[0].endpoints.revocation")
    })
  )
})

describe("authorization parameters and the offline scope (case 8)", () => {
  const dev = useDevIdp()

  it.effect("extra parameters are sent, and may replace prompt; a custom offline scope is asked", () =>
    Effect.gen(function* () {
      const broker = yield* TokenBroker.TokenBroker
      const started = yield* broker.startAuthorization({ subject: user(dev.idp).sub, provider: PROVIDER })
      const params = started.authorizationUrl.searchParams
      expect(params.get("access_type")).toBe("offline")
      expect(params.get("prompt")).toBe("select_account consent")
      expect(params.get("scope")?.split(" ")).toEqual(
        expect.arrayContaining(["openid", "offline", "notes:read"])
      )
      expect(params.get("scope")?.split(" ")).not.toContain("offline_access")
      expect(params.get("nonce")).toEqual(expect.any(String))
    }).pipe(
      Effect.provide(
        Layer.suspend(() =>
          brokerLayer(dev.idp, {
            provider: {
              authorizationParameters: { access_type: "offline", prompt: "select_account consent" },
              offlineAccessScope: "offline"
            }
          })
        )
      )
    )
  )
})

describe("an error in a 200 form body, and a provider's own name for invalid_grant (case 8)", () => {
  const dev = useProxiedDevIdp()
  const layer = (invalidGrantErrors: ReadonlyArray<string>) =>
    Layer.suspend(() =>
      brokerLayer(dev.idp, {
        provider: { internalBaseUrl: { from: dev.idp.issuer, to: dev.proxy.url }, invalidGrantErrors }
      })
    )

  it.live("bad_refresh_token named in invalidGrantErrors is a dead grant: consent again", () =>
    Effect.gen(function* () {
      const alice = user(dev.idp)
      yield* connect(dev.idp, alice)
      const broker = yield* TokenBroker.TokenBroker
      dev.proxy.afterNextRefresh({ kind: "form_error", error: "bad_refresh_token" })
      const error = yield* Effect.flip(broker.rotateRefreshToken({ subject: alice.sub, provider: PROVIDER }))
      expect(error._tag === "ConsentRequired" && error.reason).toBe("invalid_grant")
    }).pipe(Effect.provide(layer(["bad_refresh_token"])))
  )

  it.live("control: not named, it is the provider's refusal with its own error code, not a bad answer", () =>
    Effect.gen(function* () {
      const alice = user(dev.idp, 1)
      yield* connect(dev.idp, alice)
      const broker = yield* TokenBroker.TokenBroker
      dev.proxy.afterNextRefresh({ kind: "form_error", error: "bad_refresh_token" })
      const error = yield* Effect.flip(broker.rotateRefreshToken({ subject: alice.sub, provider: PROVIDER }))
      expect(error._tag === "UpstreamRejected" && error.error).toBe("bad_refresh_token")
    }).pipe(Effect.provide(layer([])))
  )
})
