import { describe, expect, it } from "@effect/vitest"
import type { DevIdp } from "@token-broker/dev-idp"
import { Effect, Redacted } from "effect"
import { AuthorizationServer, type ProviderConfig } from "../src/index.js"
import { providerConfig, useDevIdp, user } from "./support/harness.js"

const TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"

const servers = (idp: DevIdp, overrides: Partial<ProviderConfig>) =>
  AuthorizationServer.make([
    providerConfig(idp, { id: "other", tokenExchange: undefined }),
    providerConfig(idp, { tokenExchange: {}, ...overrides })
  ])

const subjectToken = (idp: DevIdp) =>
  Effect.promise(() =>
    idp.login({
      clientId: "token-broker",
      username: user(idp).username,
      password: user(idp).password,
      scopes: ["notes:read"]
    })
  ).pipe(Effect.map((tokens) => Redacted.make(tokens.access_token)))

/**
 * An exchange through the `notes` client built with `overrides`, which the client must refuse as
 * unsupported_grant_type: its message, and how many exchange requests reached dev-idp.
 */
const refusedExchange = (idp: DevIdp, overrides: Partial<ProviderConfig>) =>
  Effect.gen(function* () {
    const built = yield* servers(idp, overrides)
    const client = yield* built.get("notes")
    const token = yield* subjectToken(idp)
    idp.counters.reset()
    const error = yield* Effect.flip(client.exchange({ subjectToken: token, scopes: ["notes:read"] }))
    expect(error._tag === "UpstreamRejected" && error.error).toBe("unsupported_grant_type")
    return {
      message: error._tag === "UpstreamRejected" ? error.message : `not refused upstream: ${error._tag}`,
      requests: idp.counters.count({ grantType: TOKEN_EXCHANGE })
    }
  })

describe("token exchange against metadata (case 6)", () => {
  describe("RFC 8414 metadata whose grant_types_supported lacks token exchange", () => {
    const dev = useDevIdp({ plainOAuth: { metadata: "oauth-authorization-server" } })
    const plain: Partial<ProviderConfig> = { discovery: "oauth-authorization-server", identityBinding: "any" }

    it.effect("the start-up check fails ConfigInvalid naming providers[1].tokenExchange", () =>
      Effect.gen(function* () {
        const built = yield* servers(dev.idp, plain)
        const error = yield* Effect.flip(AuthorizationServer.checkTokenExchange(built))
        expect(error._tag).toBe("ConfigInvalid")
        expect(error.field).toBe("providers[1].tokenExchange")
        expect(error.message).toContain("does not support RFC 8693 token exchange")
      })
    )

    it.live("an exchange is refused without a request to the provider, saying why", () =>
      Effect.gen(function* () {
        const { message, requests } = yield* refusedExchange(dev.idp, plain)
        expect(message).toMatch(
          /provider "notes" does not support RFC 8693 token exchange \(its metadata's grant_types_supported does not list it\)/
        )
        expect(requests).toBe(0)
      })
    )
  })

  describe("no metadata (discovery none): a warning, then the provider's own answer", () => {
    const dev = useDevIdp({ plainOAuth: {} })
    const none = (idp: DevIdp): Partial<ProviderConfig> => ({
      discovery: "none",
      identityBinding: "any",
      endpoints: { authorization: idp.endpoints.authorization, token: idp.endpoints.token }
    })

    it.effect("the start-up check warns, naming the provider", () =>
      Effect.gen(function* () {
        const built = yield* servers(dev.idp, none(dev.idp))
        const warnings = yield* AuthorizationServer.checkTokenExchange(built)
        expect(warnings).toHaveLength(1)
        expect(warnings[0]).toMatch(/provider "notes" .*no grant_types_supported/)
      })
    )

    it.live("unsupported_grant_type (answered with status 200) says the provider does not do RFC 8693", () =>
      Effect.gen(function* () {
        const { message, requests } = yield* refusedExchange(dev.idp, none(dev.idp))
        expect(message).toMatch(
          /provider "notes" does not support RFC 8693 token exchange \(it answered unsupported_grant_type\)/
        )
        expect(requests).toBe(1)
      })
    )
  })

  describe("control: OpenID Connect discovery that lists the grant", () => {
    const dev = useDevIdp()

    it.effect("the start-up check passes without a warning, and a provider down is only a warning", () =>
      Effect.gen(function* () {
        const built = yield* servers(dev.idp, {})
        expect(yield* AuthorizationServer.checkTokenExchange(built)).toEqual([])
        const down = yield* AuthorizationServer.make([
          providerConfig(dev.idp, { issuer: "http://127.0.0.1:9", requestTimeout: "2 seconds" })
        ])
        const warnings = yield* AuthorizationServer.checkTokenExchange(down)
        expect(warnings[0]).toMatch(/could not be read/)
      })
    )
  })
})
