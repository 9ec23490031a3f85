import { describe, expect, it } from "@effect/vitest"
import { Effect, Redacted, TestClock } from "effect"
import { GrantStore, type ProviderConfig, TokenBroker } from "../src/index.js"
import { brokerLayer, claims, PROVIDER, useDevIdp, user } from "./support/harness.js"

const MCP = "http://127.0.0.1/mcp"
const dev = useDevIdp({ mcpAudience: MCP })

/** The user's own (Flow 1) token: issued by dev-idp to the MCP client for the MCP server's audience. */
const userToken = (resource = MCP) =>
  Effect.promise(() =>
    dev.idp.login({
      clientId: "mcp-client",
      username: user(dev.idp).username,
      password: user(dev.idp).password,
      scopes: ["openid", "notes:read", "notes:write"],
      resource
    })
  )

/** A broker whose session tokens are for the MCP server's audience (and `provider` over the default). */
const sessionBroker = (provider: Partial<ProviderConfig> = {}) =>
  brokerLayer(dev.idp, { broker: { sessionAudience: MCP }, provider })

/** `sessionToken`'s error for `subjectToken` (a test expects a refusal). */
const refusal = (subjectToken: string, scopes?: ReadonlyArray<string>) =>
  Effect.flatMap(TokenBroker.TokenBroker, (broker) =>
    Effect.flip(
      broker.sessionToken({
        subjectToken: Redacted.make(subjectToken),
        provider: PROVIDER,
        ...(scopes === undefined ? {} : { scopes })
      })
    )
  )

describe("sessionToken: RFC 8693 exchange of the user's own token", () => {
  it.live("yields a token for the upstream audience with the asked scopes, cached, never persisted", () =>
    Effect.gen(function* () {
      const response = yield* userToken()
      const subjectToken = Redacted.make(response.access_token)
      const broker = yield* TokenBroker.TokenBroker
      dev.idp.counters.reset()
      const token = yield* broker.sessionToken({ subjectToken, provider: PROVIDER, scopes: ["notes:read"] })
      const payload = claims(token.accessToken)
      expect(payload.aud).toBe(dev.idp.notesAudience)
      expect(payload.scope).toBe("notes:read")
      expect(payload.sub).toBe(user(dev.idp).sub)
      expect(token.source).toBe("exchange")
      // No longer than either token lives.
      expect(token.expiresAt).toBeLessThanOrEqual(Number(claims(response.access_token).exp) * 1000)
      // The exchanged token works at the upstream API.
      const notes = yield* Effect.promise(() =>
        fetch(`${dev.idp.notesApiUrl}/notes`, {
          headers: { authorization: `Bearer ${Redacted.value(token.accessToken)}` }
        })
      )
      expect(notes.status).toBe(200)
      // Cached: the same request does not exchange again.
      const again = yield* broker.sessionToken({ subjectToken, provider: PROVIDER, scopes: ["notes:read"] })
      expect(Redacted.value(again.accessToken)).toBe(Redacted.value(token.accessToken))
      expect(dev.idp.counters.count({ grantType: "urn:ietf:params:oauth:grant-type:token-exchange" })).toBe(1)
      // Never persisted.
      const store = yield* GrantStore.GrantStore
      expect(yield* store.list({}, null, 10)).toEqual([])
    }).pipe(Effect.provide(sessionBroker()))
  )

  it.live("with an actor token, the issued token carries an act claim", () =>
    Effect.gen(function* () {
      const response = yield* userToken()
      const broker = yield* TokenBroker.TokenBroker
      const token = yield* broker.sessionToken({
        subjectToken: Redacted.make(response.access_token),
        provider: PROVIDER,
        scopes: ["notes:write"]
      })
      expect(claims(token.accessToken).act).toEqual({ sub: "token-broker" })
      expect(claims(token.accessToken).scope).toBe("notes:write")
    }).pipe(Effect.provide(sessionBroker({ tokenExchange: { actorToken: true } })))
  )

  it.live("an ID token is refused (token_type)", () =>
    Effect.gen(function* () {
      const response = yield* userToken()
      const error = yield* refusal(response.id_token ?? "")
      expect(error._tag).toBe("InvalidSubjectToken")
      if (error._tag === "InvalidSubjectToken") expect(error.reason).toBe("token_type")
    }).pipe(Effect.provide(sessionBroker()))
  )

  it.live("a token for another audience is refused (AudienceMismatch)", () =>
    Effect.gen(function* () {
      const response = yield* userToken(dev.idp.notesAudience)
      const error = yield* refusal(response.access_token)
      expect(error._tag).toBe("AudienceMismatch")
      expect(error.code).toBe("audience_mismatch")
    }).pipe(Effect.provide(sessionBroker()))
  )

  it.live("a badly signed token is refused (signature)", () =>
    Effect.gen(function* () {
      const response = yield* userToken()
      const [header, payload, signature = ""] = response.access_token.split(".")
      const forged = `${header}.${payload}.${signature.slice(0, -4)}${signature.slice(-4) === "AAAA" ? "BBBB" : "AAAA"}`
      const error = yield* refusal(forged, ["notes:read"])
      expect(error._tag === "InvalidSubjectToken" && error.reason).toBe("signature")
      const garbage = yield* refusal("not a token")
      expect(garbage._tag).toBe("InvalidSubjectToken")
    }).pipe(Effect.provide(sessionBroker()))
  )

  it.effect("an expired token is refused (expired)", () =>
    Effect.gen(function* () {
      const response = yield* userToken()
      // TestClock starts at the epoch; move it past the token's expiry (plus leeway).
      yield* TestClock.setTime(Number(claims(response.access_token).exp) * 1000 + 120_000)
      const error = yield* refusal(response.access_token)
      expect(error._tag === "InvalidSubjectToken" && error.reason).toBe("expired")
    }).pipe(Effect.provide(sessionBroker()))
  )

  it.effect(
    "a cached session token is answered only while its request is valid and the subject token verifies",
    () =>
      Effect.gen(function* () {
        const response = yield* userToken()
        const exp = Number(claims(response.access_token).exp) * 1000
        yield* TestClock.setTime(Date.now())
        const broker = yield* TokenBroker.TokenBroker
        dev.idp.counters.reset()
        const ask = (scopes?: ReadonlyArray<string>) =>
          broker.sessionToken({
            subjectToken: Redacted.make(response.access_token),
            provider: PROVIDER,
            scopes
          })
        const first = yield* ask(["notes:read"])
        const again = yield* ask(["notes:read"])
        expect(Redacted.value(again.accessToken)).toBe(Redacted.value(first.accessToken))
        // the same token and provider with scopes that do not validate: refused as without a cached token
        const badScope = yield* Effect.flip(ask(["notes:read", "not a scope"]))
        expect(badScope._tag === "InvalidRequest" && badScope.field).toBe("scopes")
        const noScope = yield* Effect.flip(ask([]))
        expect(noScope._tag === "InvalidRequest" && noScope.field).toBe("scopes")
        // past the subject token's exp and the verifier's leeway (30 s): refused, cached or not
        yield* TestClock.setTime(exp + 31_000)
        const expired = yield* Effect.flip(ask(["notes:read"]))
        expect(expired._tag === "InvalidSubjectToken" && expired.reason).toBe("expired")
        expect(dev.idp.counters.count({ grantType: "urn:ietf:params:oauth:grant-type:token-exchange" })).toBe(
          1
        )
      }).pipe(Effect.provide(brokerLayer(dev.idp, { broker: { sessionAudience: MCP } })))
  )

  it.live("a provider without tokenExchange refuses session tokens with a clear error", () =>
    Effect.gen(function* () {
      const response = yield* userToken()
      const error = yield* refusal(response.access_token)
      expect(error._tag === "InvalidRequest" && error.field).toBe("provider")
    }).pipe(Effect.provide(sessionBroker({ tokenExchange: undefined })))
  )
})
