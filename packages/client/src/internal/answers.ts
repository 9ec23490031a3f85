import type { TokenBroker } from "@token-broker/core"
import { Redacted } from "effect"
import { z } from "zod"

/**
 * The broker's answers as this client reads them: every field checked, times parsed. Lenient where an
 * older broker answers less (the revoke result's access-token fields).
 */

export const TokenView = z.object({
  accessToken: z.string().min(1),
  tokenType: z.literal("Bearer"),
  expiresAt: z.string(),
  scopes: z.array(z.string()),
  source: z.enum(["cache", "store", "refresh", "exchange"])
})

const time = z.string().transform((text) => Date.parse(text))
const nullableTime = time.nullable()

export const GrantView = z.object({
  tenant: z.string(),
  subject: z.string(),
  provider: z.string(),
  version: z.number(),
  status: z.enum(["active", "reconsent_required"]),
  scopes: z.array(z.string()),
  identity: z.object({ issuer: z.string(), subject: z.string() }).nullable(),
  refreshTokenExpiresAt: nullableTime,
  accessTokenExpiresAt: nullableTime,
  createdAt: time,
  updatedAt: time,
  lastRefreshedAt: nullableTime,
  failureCount: z.number(),
  lastErrorCode: z.string().nullable()
})

export const GrantList = z.object({ items: z.array(GrantView), nextCursor: z.string().nullable() })

export const RevokeView = z.object({
  removed: z.boolean(),
  upstream: z.enum(["revoked", "failed", "not_supported", "not_attempted"]),
  upstreamError: z.object({ code: z.string(), message: z.string() }).optional(),
  // absent from brokers before the access tokens were revoked too
  accessTokens: z.enum(["revoked", "none", "not_supported", "failed", "not_attempted"]).optional(),
  revokedAtProvider: z.object({ refreshToken: z.boolean(), accessTokens: z.number().int() }).optional()
})

export const AuthorizeView = z.object({ authorizationUrl: z.url(), expiresAt: z.string() })

export const ExchangeView = z.object({
  access_token: z.string().min(1),
  token_type: z.string(),
  expires_in: z.number(),
  scope: z.string().optional()
})

export const TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
export const ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"

export const grantPath = (ref: { readonly subject: string; readonly provider: string }) =>
  `/v1/grants/${encodeURIComponent(ref.subject)}/${encodeURIComponent(ref.provider)}`

export const toIssued = (view: z.output<typeof TokenView>): TokenBroker.IssuedToken => ({
  accessToken: Redacted.make(view.accessToken),
  tokenType: "Bearer",
  expiresAt: Date.parse(view.expiresAt),
  scopes: view.scopes,
  source: view.source
})
