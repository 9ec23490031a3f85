import type { GrantRecord, PendingAuthorization } from "@token-broker/core"
import { z } from "zod"

const storedAccessToken = z.object({
  envelope: z.string(),
  expiresAt: z.number(),
  scopes: z.array(z.string()),
  requested: z.array(z.string()).optional(),
  audience: z.string().nullable()
})

/** The stored shape of a grant (the KV secret's `data`), validated on every read (F8). */
const grantRecord = z.object({
  tenant: z.string(),
  subject: z.string(),
  provider: z.string(),
  version: z.number().int(),
  status: z.enum(["active", "reconsent_required"]),
  refreshToken: z.string(),
  accessToken: storedAccessToken.nullable(),
  scopedAccessTokens: z.array(storedAccessToken).optional(),
  scopes: z.array(z.string()),
  refreshTokenExpiresAt: z.number().nullable(),
  identity: z.object({ issuer: z.string(), subject: z.string() }).nullable(),
  createdAt: z.number(),
  updatedAt: z.number(),
  lastRefreshedAt: z.number().nullable(),
  lastUsedAt: z.number().nullable(),
  failureCount: z.number().int(),
  lastErrorCode: z.string().nullable(),
  refreshStartedAt: z.number().nullable()
})

const pendingAuthorization = z.object({
  tenant: z.string(),
  subject: z.string(),
  provider: z.string(),
  scopes: z.array(z.string()),
  redirectUri: z.string(),
  returnTo: z.string().nullable(),
  codeVerifier: z.string(),
  nonce: z.string(),
  createdAt: z.number(),
  expiresAt: z.number()
})

export const parseGrant = (data: unknown): GrantRecord | undefined => {
  const parsed = grantRecord.safeParse(data)
  return parsed.success ? parsed.data : undefined
}

export const parsePending = (data: unknown): PendingAuthorization | undefined => {
  const parsed = pendingAuthorization.safeParse(data)
  return parsed.success ? parsed.data : undefined
}

/** JSON with object keys sorted: equal values give equal text whatever order a server returns keys in. */
export const canonicalJson = (value: unknown): string =>
  JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)))
      : v
  )

/** A path segment for any string: base64url of its UTF-8 (`_` for the empty string, which base64url never yields). */
export const encodeSegment = (value: string): string =>
  value === "" ? "_" : Buffer.from(value, "utf8").toString("base64url")

/** The string of a segment made by `encodeSegment`; undefined for names this adapter did not write. */
export const decodeSegment = (segment: string): string | undefined => {
  if (segment === "_") return ""
  if (!/^[A-Za-z0-9_-]+$/.test(segment)) return undefined
  const value = Buffer.from(segment, "base64url").toString("utf8")
  return encodeSegment(value) === segment ? value : undefined
}
