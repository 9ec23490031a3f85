import type { GrantRecord } from "../Grant.js"
import type { GrantInfo } from "../TokenBroker.js"

/** A stored grant as callers see it: its metadata, never a token. */
export const toGrantInfo = (record: GrantRecord): GrantInfo => ({
  tenant: record.tenant,
  subject: record.subject,
  provider: record.provider,
  version: record.version,
  status: record.status,
  scopes: record.scopes,
  identity: record.identity,
  refreshTokenExpiresAt: record.refreshTokenExpiresAt,
  accessTokenExpiresAt: record.accessToken?.expiresAt ?? null,
  createdAt: record.createdAt,
  updatedAt: record.updatedAt,
  lastRefreshedAt: record.lastRefreshedAt,
  failureCount: record.failureCount,
  lastErrorCode: record.lastErrorCode
})
