import type { TokenBroker } from "@token-broker/core"
import { Redacted } from "effect"
import { describe, expect, it } from "vitest"
import { exchangeAnswer, exchangeView, tokenAnswer, tokenView } from "../src/Views.js"

/** The token answers written once per token are the JSON of their views, byte for byte, at every hit. */
describe("token answers written once per token", () => {
  const now = Date.UTC(2026, 0, 1)
  const tokens: Array<TokenBroker.IssuedToken> = [
    {
      accessToken: Redacted.make("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1LWFsaWNlIn0.c2ln"),
      tokenType: "Bearer",
      expiresAt: now + 3_599_999,
      scopes: ["notes:read", "notes:write"],
      source: "cache"
    },
    {
      accessToken: Redacted.make('opaque "quoted" \\ back\nslash \u2028 ünï 🙂'),
      tokenType: "Bearer",
      expiresAt: now + 1500,
      scopes: [],
      source: "exchange"
    },
    {
      accessToken: Redacted.make(""),
      tokenType: "Bearer",
      expiresAt: now - 10_000,
      scopes: ['odd"scope'],
      source: "refresh"
    }
  ]

  it("tokenAnswer is JSON.stringify(tokenView) at every time, and follows a changed expiry, scope list or source", () => {
    for (const token of tokens) {
      for (const at of [now, now + 999, now + 1000, now + 1_000_000, now + 10_000_000]) {
        expect(tokenAnswer(token, at)).toBe(JSON.stringify(tokenView(token, at)))
      }
      // the same Redacted instance with another expiry, scopes or source: a new text
      for (const changed of [
        { ...token, expiresAt: token.expiresAt + 60_000 },
        { ...token, scopes: ["other"] },
        { ...token, source: "store" as const }
      ]) {
        expect(tokenAnswer(changed, now)).toBe(JSON.stringify(tokenView(changed, now)))
        expect(tokenAnswer(token, now)).toBe(JSON.stringify(tokenView(token, now)))
      }
    }
  })

  it("exchangeAnswer is JSON.stringify(exchangeView), scope only when the token names scopes", () => {
    for (const token of tokens) {
      for (const at of [now, now + 999, now + 1000, now + 10_000_000]) {
        expect(exchangeAnswer(token, at)).toBe(JSON.stringify(exchangeView(token, at)))
      }
      for (const changed of [
        { ...token, expiresAt: token.expiresAt + 60_000 },
        { ...token, scopes: token.scopes.length === 0 ? ["a", "b"] : [] }
      ]) {
        expect(exchangeAnswer(changed, now)).toBe(JSON.stringify(exchangeView(changed, now)))
        expect(exchangeAnswer(token, now)).toBe(JSON.stringify(exchangeView(token, now)))
      }
    }
    expect(JSON.parse(exchangeAnswer(tokens[1] as TokenBroker.IssuedToken, now))).toEqual({
      access_token: 'opaque "quoted" \\ back\nslash \u2028 ünï 🙂',
      issued_token_type: "urn:ietf:params:oauth:token-type:access_token",
      token_type: "Bearer",
      expires_in: 1
    })
  })
})
