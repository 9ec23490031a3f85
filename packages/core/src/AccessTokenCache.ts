import { Context, Effect, Layer, type Redacted } from "effect"

/**
 * The in-process cache of upstream access tokens, keyed by (tenant, subject, provider, sorted scopes,
 * audience). Reads take no lock: a lookup is one Map read. Entries are fresh until the token's own
 * expiry minus the early-refresh margin; the size is bounded (the least recently used entry goes
 * first); removing a grant removes every key of that grant.
 */
export interface CachedToken {
  readonly accessToken: Redacted.Redacted<string>
  /** Epoch ms. */
  readonly expiresAt: number
  readonly scopes: ReadonlyArray<string>
  /**
   * Epoch ms from which a lookup misses although the token is still valid: the token is then due for
   * its early refresh (the broker sets it from the token's issued lifetime, with jitter). Default: never.
   */
  readonly refreshAt?: number | undefined
}

export interface AccessTokenCacheService {
  /**
   * The cached token when it lives at least `minRemainingMs` more past `now`; synchronous so hot paths
   * pay no scheduling cost.
   */
  readonly lookup: (key: string, now: number, minRemainingMs: number) => CachedToken | undefined
  /**
   * The cached token when it lives at least `minRemainingMs` more, even past its `refreshAt`: the
   * still-valid token served while the provider or the store is unavailable.
   */
  readonly peek: (key: string, now: number, minRemainingMs: number) => CachedToken | undefined
  readonly set: (grantId: string, key: string, entry: CachedToken) => Effect.Effect<void>
  /** Removes every entry of a grant (every scope set and audience). */
  readonly invalidateGrant: (grantId: string) => Effect.Effect<void>
  readonly size: () => number
}

export class AccessTokenCache extends Context.Tag("@token-broker/core/AccessTokenCache")<
  AccessTokenCache,
  AccessTokenCacheService
>() {}

export interface AccessTokenCacheOptions {
  /** Upper bound on entries (default 100,000). */
  readonly maxEntries?: number | undefined
}

/** The cache key of one token: unambiguous for any subject, provider and scope strings. */
export const cacheKey = (
  grantId: string,
  scopes: ReadonlyArray<string> | null,
  audience: string | null
): string => `${grantId}\u0000${scopes === null ? "*" : scopes.join(" ")}\u0000${audience ?? ""}`

export const makeSync = (options: AccessTokenCacheOptions = {}): AccessTokenCacheService => {
  const maxEntries = options.maxEntries ?? 100_000
  const entries = new Map<string, CachedToken & { readonly grantId: string; readonly refreshAt: number }>()
  const byGrant = new Map<string, Set<string>>()

  const remove = (key: string) => {
    const entry = entries.get(key)
    if (entry === undefined) return
    entries.delete(key)
    const keys = byGrant.get(entry.grantId)
    keys?.delete(key)
    if (keys?.size === 0) byGrant.delete(entry.grantId)
  }

  return {
    lookup: (key, now, minRemainingMs) => {
      const entry = entries.get(key)
      if (entry === undefined) return undefined
      if (entry.expiresAt - now < minRemainingMs || now >= entry.refreshAt) return undefined
      // Least recently used goes first: a hit moves the entry to the young end.
      entries.delete(key)
      entries.set(key, entry)
      return entry
    },
    peek: (key, now, minRemainingMs) => {
      const entry = entries.get(key)
      return entry === undefined || entry.expiresAt - now < minRemainingMs ? undefined : entry
    },
    set: (grantId, key, entry) =>
      Effect.sync(() => {
        remove(key)
        entries.set(key, { ...entry, grantId, refreshAt: entry.refreshAt ?? Number.POSITIVE_INFINITY })
        let keys = byGrant.get(grantId)
        if (keys === undefined) {
          keys = new Set()
          byGrant.set(grantId, keys)
        }
        keys.add(key)
        while (entries.size > maxEntries) {
          const oldest = entries.keys().next()
          if (oldest.done === true) break
          remove(oldest.value)
        }
      }),
    invalidateGrant: (grantId) =>
      Effect.sync(() => {
        for (const key of byGrant.get(grantId) ?? []) entries.delete(key)
        byGrant.delete(grantId)
      }),
    size: () => entries.size
  }
}

export const layer = (options: AccessTokenCacheOptions = {}): Layer.Layer<AccessTokenCache> =>
  Layer.sync(AccessTokenCache, () => makeSync(options))
