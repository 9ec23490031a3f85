import type { TokenBroker } from "@token-broker/core"
import { Redacted } from "effect"
import { ACCESS_TOKEN_TYPE } from "./Schemas.js"

/** The JSON answers of the grants API, from core's values (times as ISO 8601, never a refresh token). */

const iso = (epochMs: number | null) => (epochMs === null ? null : new Date(epochMs).toISOString())

/**
 * The ISO 8601 form of the last expiry written: cache hits of a token answer the same expiry, and
 * formatting a Date was a microsecond of the background token's cache hit.
 */
let lastExpiry = { epochMs: Number.NaN, iso: "" }
const expiryIso = (epochMs: number) => {
  if (epochMs !== lastExpiry.epochMs) lastExpiry = { epochMs, iso: new Date(epochMs).toISOString() }
  return lastExpiry.iso
}

/** Seconds a token has left, as its answers say (`expiresIn`, `expires_in`). */
const secondsLeft = (expiresAt: number, now: number) => Math.max(0, Math.floor((expiresAt - now) / 1000))

export const tokenView = (token: TokenBroker.IssuedToken, now: number) => ({
  accessToken: Redacted.value(token.accessToken),
  tokenType: token.tokenType,
  expiresIn: secondsLeft(token.expiresAt, now),
  expiresAt: expiryIso(token.expiresAt),
  scopes: [...token.scopes],
  source: token.source
})

/**
 * An answer's JSON text around its one changing number (the seconds left), written once per token: a
 * cache hit answers the same token, expiry and scopes as the hit before it, and serializing the answer
 * (a JWT of some 700 characters scanned for escapes) was 1.8 us of the background token's ~27 us hit in
 * a perf profile of bench/http.ts. Keyed by the token's `Redacted` instance, which the in-process cache
 * keeps per entry (another entry, another instance), and checked against the rest of the token, so a
 * text is never reused for another answer; it lives as long as the cache holds the token.
 */
interface AnswerText {
  readonly token: TokenBroker.IssuedToken
  readonly head: string
  readonly tail: string
}

const sameAnswer = (text: AnswerText | undefined, token: TokenBroker.IssuedToken): text is AnswerText =>
  text !== undefined &&
  text.token.expiresAt === token.expiresAt &&
  text.token.scopes === token.scopes &&
  text.token.source === token.source &&
  text.token.tokenType === token.tokenType

const tokenAnswers = new WeakMap<Redacted.Redacted<string>, AnswerText>()

/** `JSON.stringify(tokenView(token, now))`, byte for byte. */
export const tokenAnswer = (token: TokenBroker.IssuedToken, now: number): string => {
  let text = tokenAnswers.get(token.accessToken)
  if (!sameAnswer(text, token)) {
    const { accessToken, tokenType, expiresAt, scopes, source } = tokenView(token, now)
    text = {
      token,
      head: `${JSON.stringify({ accessToken, tokenType }).slice(0, -1)},"expiresIn":`,
      tail: `,${JSON.stringify({ expiresAt, scopes, source }).slice(1)}`
    }
    tokenAnswers.set(token.accessToken, text)
  }
  return `${text.head}${secondsLeft(token.expiresAt, now)}${text.tail}`
}

/** The RFC 8693 answer of an exchange (`scope` only when the token names scopes). */
export const exchangeView = (token: TokenBroker.IssuedToken, now: number) => ({
  access_token: Redacted.value(token.accessToken),
  issued_token_type: ACCESS_TOKEN_TYPE as typeof ACCESS_TOKEN_TYPE,
  token_type: "Bearer" as const,
  expires_in: secondsLeft(token.expiresAt, now),
  ...(token.scopes.length > 0 ? { scope: token.scopes.join(" ") } : {})
})

const exchangeAnswers = new WeakMap<Redacted.Redacted<string>, AnswerText>()

/** `JSON.stringify(exchangeView(token, now))`, byte for byte. */
export const exchangeAnswer = (token: TokenBroker.IssuedToken, now: number): string => {
  let text = exchangeAnswers.get(token.accessToken)
  if (!sameAnswer(text, token)) {
    const { access_token, issued_token_type, token_type, scope } = exchangeView(token, now)
    text = {
      token,
      head: `${JSON.stringify({ access_token, issued_token_type, token_type }).slice(0, -1)},"expires_in":`,
      tail: scope === undefined ? "}" : `,"scope":${JSON.stringify(scope)}}`
    }
    exchangeAnswers.set(token.accessToken, text)
  }
  return `${text.head}${secondsLeft(token.expiresAt, now)}${text.tail}`
}

export const grantView = (grant: TokenBroker.GrantInfo) => ({
  tenant: grant.tenant,
  subject: grant.subject,
  provider: grant.provider,
  version: grant.version,
  status: grant.status,
  scopes: [...grant.scopes],
  identity: grant.identity,
  refreshTokenExpiresAt: iso(grant.refreshTokenExpiresAt),
  accessTokenExpiresAt: iso(grant.accessTokenExpiresAt),
  createdAt: new Date(grant.createdAt).toISOString(),
  updatedAt: new Date(grant.updatedAt).toISOString(),
  lastRefreshedAt: iso(grant.lastRefreshedAt),
  failureCount: grant.failureCount,
  lastErrorCode: grant.lastErrorCode
})
