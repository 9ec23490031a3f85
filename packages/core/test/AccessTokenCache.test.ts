import { describe, expect, it } from "@effect/vitest"
import { Effect, Redacted } from "effect"
import { AccessTokenCache } from "../src/index.js"

const entry = (expiresAt: number, token = "at") => ({
  accessToken: Redacted.make(token),
  expiresAt,
  scopes: ["a"]
})

describe("AccessTokenCache", () => {
  it.effect("serves an entry only while it lives longer than the asked remaining time", () =>
    Effect.gen(function* () {
      const cache = AccessTokenCache.makeSync()
      const key = AccessTokenCache.cacheKey("g1", ["a"], null)
      yield* cache.set("g1", key, entry(10_000))
      expect(cache.lookup(key, 0, 5_000)).toBeDefined()
      expect(cache.lookup(key, 5_000, 5_000)).toBeDefined()
      expect(cache.lookup(key, 5_001, 5_000)).toBeUndefined()
      expect(cache.lookup(AccessTokenCache.cacheKey("g1", ["a", "b"], null), 0, 0)).toBeUndefined()
    })
  )

  it.effect("keys scope sets and audiences apart, and invalidation removes every key of a grant", () =>
    Effect.gen(function* () {
      const cache = AccessTokenCache.makeSync()
      const keys = [
        AccessTokenCache.cacheKey("g1", null, null),
        AccessTokenCache.cacheKey("g1", ["a"], null),
        AccessTokenCache.cacheKey("g1", ["a"], "https://api")
      ]
      for (const [i, key] of keys.entries()) yield* cache.set("g1", key, entry(10_000, `t${i}`))
      const other = AccessTokenCache.cacheKey("g2", null, null)
      yield* cache.set("g2", other, entry(10_000))
      expect(
        new Set(keys.map((k) => Redacted.value(cache.lookup(k, 0, 0)?.accessToken ?? Redacted.make(""))))
      ).toEqual(new Set(["t0", "t1", "t2"]))
      yield* cache.invalidateGrant("g1")
      for (const key of keys) expect(cache.lookup(key, 0, 0)).toBeUndefined()
      expect(cache.lookup(other, 0, 0)).toBeDefined()
      expect(cache.size()).toBe(1)
    })
  )

  it.effect("is bounded: the least recently used entries go first", () =>
    Effect.gen(function* () {
      const cache = AccessTokenCache.makeSync({ maxEntries: 3 })
      for (let i = 0; i < 3; i++) yield* cache.set(`g${i}`, `k${i}`, entry(10_000))
      // k0 is used, so k1 is now the least recently used.
      expect(cache.lookup("k0", 0, 0)).toBeDefined()
      for (let i = 3; i < 5; i++) yield* cache.set(`g${i}`, `k${i}`, entry(10_000))
      expect(cache.size()).toBe(3)
      expect(cache.lookup("k1", 0, 0)).toBeUndefined()
      expect(cache.lookup("k2", 0, 0)).toBeUndefined()
      expect(cache.lookup("k0", 0, 0)).toBeDefined()
      expect(cache.lookup("k4", 0, 0)).toBeDefined()
      yield* cache.invalidateGrant("g1")
      expect(cache.size()).toBe(3)
      yield* cache.invalidateGrant("g0")
      expect(cache.size()).toBe(2)
    })
  )
})
