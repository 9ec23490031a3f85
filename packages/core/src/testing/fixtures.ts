import { randomBytes, randomUUID } from "node:crypto"
import type { GrantKey, GrantRecord, PendingAuthorization } from "../Grant.js"

/** A tenant id no other test uses, so tests share no state even on one long-lived database. */
export const freshTenant = (): string => `tenant-${randomUUID()}`

/** Looks like a KeyRing envelope (`tb1.<kid>.<nonce>.<ciphertext>`); the store must keep it verbatim. */
export const fakeEnvelope = (): string =>
  `tb1.conformance.${randomBytes(12).toString("base64url")}.${randomBytes(48).toString("base64url")}`

/** A record with every optional field empty (nulls, empty arrays). */
export const minimalRecord = (key: GrantKey, overrides: Partial<GrantRecord> = {}): GrantRecord => ({
  tenant: key.tenant,
  subject: key.subject,
  provider: key.provider,
  version: 1,
  status: "active",
  refreshToken: fakeEnvelope(),
  accessToken: null,
  scopes: [],
  refreshTokenExpiresAt: null,
  identity: null,
  createdAt: 1_700_000_000_000,
  updatedAt: 1_700_000_000_000,
  lastRefreshedAt: null,
  lastUsedAt: null,
  failureCount: 0,
  lastErrorCode: null,
  refreshStartedAt: null,
  ...overrides
})

/** A record with every field set, including nested objects, arrays and non-ASCII text. */
export const fullRecord = (key: GrantKey, overrides: Partial<GrantRecord> = {}): GrantRecord => ({
  tenant: key.tenant,
  subject: key.subject,
  provider: key.provider,
  version: 1,
  status: "reconsent_required",
  refreshToken: fakeEnvelope(),
  accessToken: {
    envelope: fakeEnvelope(),
    expiresAt: 1_700_000_360_123,
    scopes: ["files.read", "notes:write", "openid"],
    audience: "https://api.example.test/résumé"
  },
  scopedAccessTokens: [
    {
      envelope: fakeEnvelope(),
      expiresAt: 1_700_000_300_000,
      scopes: ["files.read", "openid"],
      requested: ["files.read"],
      audience: null
    }
  ],
  scopes: ["files.read", "notes:write", "offline_access", "openid"],
  refreshTokenExpiresAt: 1_707_776_000_999,
  identity: { issuer: "https://idp.example.test/realms/ünïcødé", subject: '用户-Zoë-🔑-"quoted"\\' },
  createdAt: 1_700_000_000_001,
  updatedAt: 1_700_000_000_002,
  lastRefreshedAt: 1_700_000_000_003,
  lastUsedAt: 1_700_000_000_004,
  failureCount: 3,
  lastErrorCode: "temporarily_unavailable",
  refreshStartedAt: 1_700_000_000_005,
  ...overrides
})

/** The record a writer would store next: version + 1, different secrets and metadata. */
export const nextVersion = (record: GrantRecord, overrides: Partial<GrantRecord> = {}): GrantRecord => ({
  ...record,
  version: record.version + 1,
  refreshToken: fakeEnvelope(),
  updatedAt: record.updatedAt + 1,
  failureCount: 0,
  ...overrides
})

export const pendingRecord = (
  tenant: string,
  now: number,
  overrides: Partial<PendingAuthorization> = {}
): PendingAuthorization => ({
  tenant,
  subject: "Zoë-用户",
  provider: "nextcloud",
  scopes: ["offline_access", "openid"],
  redirectUri: "https://broker.example.test/connect/callback",
  returnTo: null,
  codeVerifier: fakeEnvelope(),
  nonce: fakeEnvelope(),
  createdAt: now,
  expiresAt: now + 600_000,
  ...overrides
})

/** A state hash no other test uses. */
export const freshStateHash = (): string => randomBytes(32).toString("base64url")
