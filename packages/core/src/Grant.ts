import { z } from "zod"
import { formatZodIssues } from "./ZodIssues.js"

/**
 * The stored grant: one subject's consent for one provider. Secrets inside it are envelopes produced by
 * the KeyRing (never plain text); everything else is plain metadata that storage adapters may index.
 * Times are epoch milliseconds.
 */
export interface GrantKey {
  readonly tenant: string
  readonly subject: string
  readonly provider: string
}

export type GrantStatus = "active" | "reconsent_required"

/** An access token shared between replicas, minted from this grant for one requested scope set. */
export interface StoredAccessToken {
  /** KeyRing envelope of the access token. */
  readonly envelope: string
  readonly expiresAt: number
  /** The scopes the access token carries (sorted). */
  readonly scopes: ReadonlyArray<string>
  /**
   * The scope set it was asked for (sorted), when it differs from what the provider answered with or
   * was recorded: callers asking this set get this token. Absent: `scopes` is the set it serves.
   */
  readonly requested?: ReadonlyArray<string> | undefined
  readonly audience: string | null
}

export interface GrantRecord extends GrantKey {
  /** +1 on every write; the compare-and-set fence. */
  readonly version: number
  readonly status: GrantStatus
  /** KeyRing envelope of the refresh token. */
  readonly refreshToken: string
  /** The last access token minted from this grant. */
  readonly accessToken: StoredAccessToken | null
  /**
   * Still-valid access tokens minted earlier for other requested scope sets than `accessToken`'s (one per
   * set, newest first; at most three): a downscoped caller does not make the
   * callers of the full scope set refresh again, on any replica. Absent in records written before it.
   */
  readonly scopedAccessTokens?: ReadonlyArray<StoredAccessToken> | undefined
  /** The scopes the user granted (sorted). */
  readonly scopes: ReadonlyArray<string>
  /** From the provider's `refresh_expires_in` or its configured lifetime; null when unbounded/unknown. */
  readonly refreshTokenExpiresAt: number | null
  /** The identity that consented at the provider (`iss`, `sub` of its ID token), when known. */
  readonly identity: { readonly issuer: string; readonly subject: string } | null
  readonly createdAt: number
  readonly updatedAt: number
  readonly lastRefreshedAt: number | null
  readonly lastUsedAt: number | null
  /** Consecutive failed refresh attempts (reset on success). */
  readonly failureCount: number
  readonly lastErrorCode: string | null
  /**
   * Set just before a refresh is sent upstream and cleared by the write of its result: a grant whose
   * marker is still set after its lease ended was being refreshed by a process that died (diagnosable
   * `rotation_lost`).
   */
  readonly refreshStartedAt: number | null
}

/** A consent in progress (Flow 2), kept in the store so any replica can finish it. */
export interface PendingAuthorization {
  readonly tenant: string
  readonly subject: string
  readonly provider: string
  readonly scopes: ReadonlyArray<string>
  readonly redirectUri: string
  readonly returnTo: string | null
  /** KeyRing envelope of the PKCE code verifier. */
  readonly codeVerifier: string
  /** KeyRing envelope of the nonce. */
  readonly nonce: string
  readonly createdAt: number
  readonly expiresAt: number
}

export interface GrantFilter {
  readonly tenant?: string | undefined
  readonly subject?: string | undefined
  readonly provider?: string | undefined
  readonly status?: GrantStatus | undefined
}

export interface GrantPage {
  readonly items: ReadonlyArray<GrantRecord>
  /** Pass back to get the next page; null on the last page. */
  readonly nextCursor: string | null
}

/** What a new grant is made of: its key, its sealed tokens and what the provider said of them. */
export type NewGrant = GrantKey &
  Pick<GrantRecord, "refreshToken" | "accessToken" | "scopes" | "refreshTokenExpiresAt" | "identity">

/**
 * The record of a grant consented at `now` (or provisioned by a tool or a test): version 1, active,
 * refreshed now, no failure and no refresh under way.
 */
export const newGrantRecord = (grant: NewGrant, now: number): GrantRecord => ({
  ...grant,
  version: 1,
  status: "active",
  createdAt: now,
  updatedAt: now,
  lastRefreshedAt: now,
  lastUsedAt: null,
  failureCount: 0,
  lastErrorCode: null,
  refreshStartedAt: null
})

export const grantKeyString = (key: GrantKey): string =>
  `${encodeURIComponent(key.tenant)}/${encodeURIComponent(key.subject)}/${encodeURIComponent(key.provider)}`

export const sameKey = (a: GrantKey, b: GrantKey): boolean =>
  a.tenant === b.tenant && a.subject === b.subject && a.provider === b.provider

/** Order used by every store's `list`: tenant, then subject, then provider (code-unit order). */
export const compareKeys = (a: GrantKey, b: GrantKey): number =>
  cmp(a.tenant, b.tenant) || cmp(a.subject, b.subject) || cmp(a.provider, b.provider)

const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0)

const nullableTime = z.number().int().nonnegative().nullable()
const scopeList = z.array(z.string().min(1))

const storedAccessToken = z.object({
  envelope: z.string().min(1),
  expiresAt: z.number().int(),
  scopes: scopeList,
  requested: scopeList.optional(),
  audience: z.string().nullable()
})

/** The canonical grant record (field note F8): stores validate every record they read with it. */
export const GrantRecordSchema = z.object({
  tenant: z.string().min(1),
  subject: z.string().min(1),
  provider: z.string().min(1),
  version: z.number().int().positive(),
  status: z.enum(["active", "reconsent_required"]),
  refreshToken: z.string().min(1),
  accessToken: storedAccessToken.nullable(),
  scopedAccessTokens: z.array(storedAccessToken).max(8).optional(),
  scopes: scopeList,
  refreshTokenExpiresAt: nullableTime,
  identity: z.object({ issuer: z.string(), subject: z.string() }).nullable(),
  createdAt: z.number().int().nonnegative(),
  updatedAt: z.number().int().nonnegative(),
  lastRefreshedAt: nullableTime,
  lastUsedAt: nullableTime,
  failureCount: z.number().int().nonnegative(),
  lastErrorCode: z.string().nullable(),
  refreshStartedAt: nullableTime
})

export const PendingAuthorizationSchema = z.object({
  tenant: z.string().min(1),
  subject: z.string().min(1),
  provider: z.string().min(1),
  scopes: scopeList,
  redirectUri: z.string().min(1),
  returnTo: z.string().nullable(),
  codeVerifier: z.string().min(1),
  nonce: z.string().min(1),
  createdAt: z.number().int().nonnegative(),
  expiresAt: z.number().int().nonnegative()
})

/**
 * Validates a record read from a store. The error names the first offending field (never its value),
 * so a malformed row is diagnosable without exposing data.
 */
export const parseGrantRecord = (
  input: unknown
): { ok: true; record: GrantRecord } | { ok: false; problem: string } =>
  parseWith(GrantRecordSchema, input, (record) => record as GrantRecord)

export const parsePendingAuthorization = (
  input: unknown
): { ok: true; record: PendingAuthorization } | { ok: false; problem: string } =>
  parseWith(PendingAuthorizationSchema, input, (record) => record as PendingAuthorization)

const parseWith = <S extends z.ZodType, A>(schema: S, input: unknown, cast: (value: z.output<S>) => A) => {
  const result = schema.safeParse(input)
  if (result.success) return { ok: true as const, record: cast(result.data) }
  return { ok: false as const, problem: formatZodIssues(result.error, { root: "record" }) }
}
