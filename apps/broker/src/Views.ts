import type { TokenBroker } from "@token-broker/core"
import { Redacted } from "effect"

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

export const tokenView = (token: TokenBroker.IssuedToken, now: number) => ({
  accessToken: Redacted.value(token.accessToken),
  tokenType: token.tokenType,
  expiresIn: Math.max(0, Math.floor((token.expiresAt - now) / 1000)),
  expiresAt: expiryIso(token.expiresAt),
  scopes: [...token.scopes],
  source: token.source
})

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
