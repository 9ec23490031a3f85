import { Context, Effect, Layer, type Redacted } from "effect"

/**
 * The in-process cache of upstream access tokens, keyed by (tenant, subject, provider, sorted scopes,
 * audience). Reads take no lock: a lookup is one Map read. Entries are fresh until the token's own
 * expiry minus the early-refresh margin; the size is bounded (the least recently used entry goes
 * first, where a hit renews an entry once half the capacity was set since its last renewal, so a hit
 * on a young entry costs nothing beyond the read); removing a grant removes every key of that grant.
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
  /**
   * `lookup` of a grant's background token by the parts of its key: no key string is built, so a hit
   * costs a Map read by subject and a comparison of the other parts. Finds what `set` stored with a slot.
   */
  readonly lookupSlot: (
    tenant: string,
    subject: string,
    provider: string,
    variant: string,
    now: number,
    minRemainingMs: number
  ) => CachedToken | undefined
  /** Stores under `key`; a grant's background token also names its slot, for `lookupSlot`. */
  readonly set: (grantId: string, key: string, entry: CachedToken, slot?: GrantSlot) => Effect.Effect<void>
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

/** A grant's background token by the parts of its key: `variant` is `scopeVariant` of its scopes. */
export interface GrantSlot {
  readonly tenant: string
  readonly subject: string
  readonly provider: string
  readonly variant: string
}

/** The scope part of a cache key: `*` for the grant's own scopes, else the sorted scopes. */
export const scopeVariant = (scopes: ReadonlyArray<string> | null): string =>
  scopes === null ? "*" : scopes.join(" ")

/** The cache key of one token: unambiguous for any subject, provider and scope strings. */
export const cacheKey = (
  grantId: string,
  scopes: ReadonlyArray<string> | null,
  audience: string | null
): string => `${grantId}\u0000${scopeVariant(scopes)}\u0000${audience ?? ""}`

interface Entry extends CachedToken {
  readonly grantId: string
  readonly refreshAt: number
  readonly key: string
  readonly slot: GrantSlot | undefined
  /** The value of the cache's sequence when the entry was set or last moved to the young end. */
  seq: number
}

const inSlot = (entry: Entry, tenant: string, provider: string, variant: string): boolean =>
  entry.slot !== undefined &&
  entry.slot.provider === provider &&
  entry.slot.variant === variant &&
  entry.slot.tenant === tenant

export const makeSync = (options: AccessTokenCacheOptions = {}): AccessTokenCacheService => {
  const maxEntries = options.maxEntries ?? 100_000
  // A hit moves its entry to the young end only once half the cache's capacity was set or moved since:
  // an entry hit at least that often is never the oldest, and a hit on a young entry is one Map read.
  const moveAfter = Math.max(1, Math.floor(maxEntries / 2))
  let seq = 0
  const entries = new Map<string, Entry>()
  const byGrant = new Map<string, Set<string>>()
  // Slotted entries by subject: one entry, or the few of a subject with several providers or scope sets.
  const bySubject = new Map<string, Entry | Array<Entry>>()

  const unindex = (entry: Entry) => {
    if (entry.slot === undefined) return
    const found = bySubject.get(entry.slot.subject)
    if (found === entry) bySubject.delete(entry.slot.subject)
    else if (Array.isArray(found)) {
      const rest = found.filter((e) => e !== entry)
      if (rest.length === 1) bySubject.set(entry.slot.subject, rest[0] as Entry)
      else bySubject.set(entry.slot.subject, rest)
    }
  }

  const index = (entry: Entry) => {
    if (entry.slot === undefined) return
    const found = bySubject.get(entry.slot.subject)
    if (found === undefined) bySubject.set(entry.slot.subject, entry)
    else if (Array.isArray(found)) found.push(entry)
    else bySubject.set(entry.slot.subject, [found, entry])
  }

  const remove = (key: string) => {
    const entry = entries.get(key)
    if (entry === undefined) return
    entries.delete(key)
    unindex(entry)
    const keys = byGrant.get(entry.grantId)
    keys?.delete(key)
    if (keys?.size === 0) byGrant.delete(entry.grantId)
  }

  const fresh = (entry: Entry, now: number, minRemainingMs: number): Entry | undefined => {
    if (entry.expiresAt - now < minRemainingMs || now >= entry.refreshAt) return undefined
    // Least recently used goes first: a hit on an entry in the old half moves it to the young end.
    if (seq - entry.seq >= moveAfter) {
      entry.seq = ++seq
      entries.delete(entry.key)
      entries.set(entry.key, entry)
    }
    return entry
  }

  return {
    lookup: (key, now, minRemainingMs) => {
      const entry = entries.get(key)
      return entry === undefined ? undefined : fresh(entry, now, minRemainingMs)
    },
    lookupSlot: (tenant, subject, provider, variant, now, minRemainingMs) => {
      const found = bySubject.get(subject)
      if (found === undefined) return undefined
      if (!Array.isArray(found)) {
        return inSlot(found, tenant, provider, variant) ? fresh(found, now, minRemainingMs) : undefined
      }
      for (const entry of found) {
        if (inSlot(entry, tenant, provider, variant)) return fresh(entry, now, minRemainingMs)
      }
      return undefined
    },
    peek: (key, now, minRemainingMs) => {
      const entry = entries.get(key)
      return entry === undefined || entry.expiresAt - now < minRemainingMs ? undefined : entry
    },
    set: (grantId, key, entry, slot) =>
      Effect.sync(() => {
        remove(key)
        const stored: Entry = {
          ...entry,
          grantId,
          refreshAt: entry.refreshAt ?? Number.POSITIVE_INFINITY,
          key,
          slot,
          seq: ++seq
        }
        entries.set(key, stored)
        index(stored)
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
        for (const key of [...(byGrant.get(grantId) ?? [])]) remove(key)
      }),
    size: () => entries.size
  }
}

export const layer = (options: AccessTokenCacheOptions = {}): Layer.Layer<AccessTokenCache> =>
  Layer.sync(AccessTokenCache, () => makeSync(options))
