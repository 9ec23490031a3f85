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

  it.effect("keeps an entry hit at least once per half its capacity of sets, and evicts one never hit", () =>
    Effect.gen(function* () {
      const cache = AccessTokenCache.makeSync({ maxEntries: 1000 })
      yield* cache.set("hot", "hot", entry(10_000))
      yield* cache.set("cold", "cold", entry(10_000))
      for (let i = 0; i < 10_000; i++) {
        yield* cache.set(`g${i}`, `k${i}`, entry(10_000))
        if (i % 499 === 0) expect(cache.lookup("hot", 0, 0), `hot after ${i} sets`).toBeDefined()
      }
      expect(cache.size()).toBe(1000)
      expect(cache.lookup("hot", 0, 0)).toBeDefined()
      expect(cache.lookup("cold", 0, 0)).toBeUndefined()
      expect(cache.lookup("k9999", 0, 0)).toBeDefined()
      expect(cache.lookup("k8999", 0, 0)).toBeUndefined()
    })
  )

  it.effect("finds a grant's token by the parts of its key, and only the slot it was stored under", () =>
    Effect.gen(function* () {
      const cache = AccessTokenCache.makeSync({ maxEntries: 4 })
      const slot = (tenant: string, subject: string, provider: string, variant: string) => ({
        tenant,
        subject,
        provider,
        variant
      })
      const put = (tenant: string, subject: string, provider: string, variant: string, token: string) =>
        cache.set(
          `${tenant}/${subject}/${provider}`,
          `${tenant}/${subject}/${provider}\u0000${variant}`,
          entry(10_000, token),
          slot(tenant, subject, provider, variant)
        )
      yield* put("t1", "alice", "notes", "*", "t1-notes-all")
      yield* put("t1", "alice", "notes", "a", "t1-notes-a")
      yield* put("t2", "alice", "notes", "*", "t2-notes-all")
      const token = (tenant: string, subject: string, provider: string, variant: string) => {
        const hit = cache.lookupSlot(tenant, subject, provider, variant, 0, 0)
        return hit === undefined ? undefined : Redacted.value(hit.accessToken)
      }
      expect(token("t1", "alice", "notes", "*")).toBe("t1-notes-all")
      expect(token("t1", "alice", "notes", "a")).toBe("t1-notes-a")
      expect(token("t2", "alice", "notes", "*")).toBe("t2-notes-all")
      expect(token("t2", "alice", "notes", "a")).toBeUndefined()
      expect(token("t1", "alice", "mail", "*")).toBeUndefined()
      expect(token("t1", "bob", "notes", "*")).toBeUndefined()
      // The string key finds the same entry; a lapsed one is not served by either.
      expect(cache.lookup("t1/alice/notes\u0000*", 0, 0)).toBe(
        cache.lookupSlot("t1", "alice", "notes", "*", 0, 0)
      )
      expect(cache.lookupSlot("t1", "alice", "notes", "*", 10_001, 0)).toBeUndefined()
      // Removing a grant and evicting an entry both take it out of the slots.
      yield* cache.invalidateGrant("t1/alice/notes")
      expect(token("t1", "alice", "notes", "*")).toBeUndefined()
      expect(token("t1", "alice", "notes", "a")).toBeUndefined()
      expect(token("t2", "alice", "notes", "*")).toBe("t2-notes-all")
      for (let i = 0; i < 4; i++) yield* put("t3", `user${i}`, "notes", "*", `t3-${i}`)
      expect(cache.size()).toBe(4)
      expect(token("t2", "alice", "notes", "*")).toBeUndefined()
      expect(token("t3", "user0", "notes", "*")).toBe("t3-0")
      // A slot stored again replaces its entry.
      yield* put("t3", "user0", "notes", "*", "t3-0-again")
      expect(token("t3", "user0", "notes", "*")).toBe("t3-0-again")
      expect(cache.size()).toBe(4)
    })
  )
})
