import { describe, expect, it } from "@effect/vitest"
import { Effect, Redacted, TestClock } from "effect"
import { TokenBroker, TokenVerifier } from "../src/index.js"
import { brokerLayer, claims, PROVIDER, useDevIdp, user } from "./support/harness.js"

const MCP = "http://127.0.0.1/mcp"
const dev = useDevIdp({ mcpAudience: MCP })
const EXCHANGE = { grantType: "urn:ietf:params:oauth:grant-type:token-exchange" }

const userToken = Effect.promise(() =>
  dev.idp.login({
    clientId: "mcp-client",
    username: user(dev.idp).username,
    password: user(dev.idp).password,
    scopes: ["openid", "notes:read", "notes:write"],
    resource: MCP
  })
)

/** A user token, the clock at now (TestClock), the broker and its verifier. */
const started = Effect.gen(function* () {
  const response = yield* userToken
  yield* TestClock.setTime(Date.now())
  dev.idp.counters.reset()
  return {
    response,
    subjectToken: Redacted.make(response.access_token),
    broker: yield* TokenBroker.TokenBroker,
    verifier: yield* TokenVerifier.TokenVerifier
  }
})

describe("cachedSessionToken: a repeat exchange answered without the runtime", () => {
  it.effect("answers the cached session token of a remembered verification, and counts no exchange", () =>
    Effect.gen(function* () {
      const { response, subjectToken, broker, verifier } = yield* started
      const request = { subjectToken, provider: PROVIDER, scopes: ["notes:read"] }
      // nothing verified or cached yet
      expect(broker.cachedSessionToken(request)).toBeUndefined()
      const first = yield* broker.sessionToken(request)
      // another Redacted instance of the same token: the memo is by the token's digest
      const hit = broker.cachedSessionToken({
        ...request,
        subjectToken: Redacted.make(response.access_token)
      })
      expect(hit && Redacted.value(hit.accessToken)).toBe(Redacted.value(first.accessToken))
      expect(hit?.expiresAt).toBe(first.expiresAt)
      expect(hit?.scopes).toEqual(first.scopes)
      expect(hit?.source).toBe("exchange")
      expect(verifier.remembered?.(subjectToken, { audience: MCP })?.subject).toBe(user(dev.idp).sub)
      expect(dev.idp.counters.count(EXCHANGE)).toBe(1)
    }).pipe(Effect.provide(brokerLayer(dev.idp, { broker: { sessionAudience: MCP } })))
  )

  it.effect("falls through for what sessionToken would refuse or exchange anew", () =>
    Effect.gen(function* () {
      const { response, subjectToken, broker, verifier } = yield* started
      yield* broker.sessionToken({ subjectToken, provider: PROVIDER, scopes: ["notes:read"] })
      const ask = (request: Partial<TokenBroker.SessionTokenRequest>) =>
        broker.cachedSessionToken({ subjectToken, provider: PROVIDER, scopes: ["notes:read"], ...request })
      expect(ask({})).toBeDefined()
      // a request sessionToken refuses: scopes that do not validate, none, an unknown provider
      expect(ask({ scopes: ["notes:read", "not a scope"] })).toBeUndefined()
      expect(ask({ scopes: [] })).toBeUndefined()
      expect(ask({ provider: "elsewhere" })).toBeUndefined()
      // scopes or an audience not cached for this token
      expect(ask({ scopes: ["notes:write"] })).toBeUndefined()
      expect(ask({ audience: "https://other.example" })).toBeUndefined()
      // a token never verified, and a token for another audience than the session audience
      expect(ask({ subjectToken: Redacted.make(`${response.access_token}x`) })).toBeUndefined()
      expect(verifier.remembered?.(subjectToken, { audience: "https://other.example" })).toBeUndefined()
      expect(verifier.remembered?.(subjectToken, { audience: ["https://other.example", MCP] })).toBeDefined()
    }).pipe(Effect.provide(brokerLayer(dev.idp, { broker: { sessionAudience: MCP } })))
  )

  it.effect("keeps to the verifier's memo time, and refuses nothing itself once the token expired", () =>
    Effect.gen(function* () {
      const { response, subjectToken, broker } = yield* started
      const exp = Number(claims(response.access_token).exp) * 1000
      const request = { subjectToken, provider: PROVIDER, scopes: ["notes:read"] }
      yield* broker.sessionToken(request)
      expect(broker.cachedSessionToken(request)).toBeDefined()
      // past the verifier's memo (30 s), the session token still cached: the verification runs again
      yield* TestClock.adjust("31 seconds")
      expect(broker.cachedSessionToken(request)).toBeUndefined()
      yield* broker.sessionToken(request)
      expect(broker.cachedSessionToken(request)).toBeDefined()
      expect(dev.idp.counters.count(EXCHANGE)).toBe(1)
      // past the subject token's exp (and the leeway): not answered here, refused by sessionToken
      yield* TestClock.setTime(exp + 31_000)
      expect(broker.cachedSessionToken(request)).toBeUndefined()
      const expired = yield* Effect.flip(broker.sessionToken(request))
      expect(expired._tag === "InvalidSubjectToken" && expired.reason).toBe("expired")
    }).pipe(Effect.provide(brokerLayer(dev.idp, { broker: { sessionAudience: MCP } })))
  )
})
