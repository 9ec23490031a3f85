import { randomBytes } from "node:crypto"
import type { GrantKey, GrantRecord } from "@token-broker/core"

/**
 * Benchmark grants shaped like core's conformance `fullRecord` (every field set, envelopes of the same
 * size as its `fakeEnvelope`, non-ASCII text), built fast enough for a million rows. (The fixtures
 * themselves live in `@token-broker/core/testing`, which needs a running vitest.)
 */

/** Random base64url pieces that envelopes are put together from: cheap for a million records. */
const pieces = (count: number, length: number) =>
  Array.from({ length: count }, () =>
    randomBytes(Math.ceil((length * 3) / 4))
      .toString("base64url")
      .slice(0, length)
  )
const NONCES = pieces(4096, 16)
const CIPHERTEXTS = pieces(4096, 64)

/** A small, fast, seeded PRNG (mulberry32): the same sequence of keys in every run. */
export const prng = (seed: number) => {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** `tb1.<kid>.<16-char nonce>.<64-char ciphertext>`, the size of a conformance `fakeEnvelope`. */
const envelope = (i: number, field: number) =>
  `tb1.conformance.${NONCES[(i * 31 + field) & 4095]}.${CIPHERTEXTS[(i * 17 + field * 7) % 4093]}`

export const TENANT = "bench"
export const PROVIDER = "nextcloud"

export const benchKey = (i: number): GrantKey => ({
  tenant: TENANT,
  subject: `subject-${String(i).padStart(8, "0")}`,
  provider: PROVIDER
})

/** Grant number `i` at `version`: the record a writer would store (new envelopes per version). */
export const benchRecord = (i: number, version = 1): GrantRecord => {
  const base = 1_700_000_000_000 + i
  return {
    ...benchKey(i),
    version,
    status: "active",
    refreshToken: envelope(i, version * 2),
    accessToken: {
      envelope: envelope(i, version * 2 + 1),
      expiresAt: base + 360_123,
      scopes: ["files.read", "notes:write", "openid"],
      audience: "https://api.example.test/résumé"
    },
    scopes: ["files.read", "notes:write", "offline_access", "openid"],
    refreshTokenExpiresAt: base + 7_776_000_999,
    identity: { issuer: "https://idp.example.test/realms/ünïcødé", subject: `用户-${i}` },
    createdAt: base,
    updatedAt: base + version,
    lastRefreshedAt: base + version,
    lastUsedAt: base + version,
    failureCount: 0,
    lastErrorCode: null,
    refreshStartedAt: null
  }
}
