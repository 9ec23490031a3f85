import { describe, expect, it } from "@effect/vitest"
import { Clock, Context, Effect, Layer, Option, Random, Redacted, TestClock } from "effect"
import { GrantStore, TokenBroker } from "../src/index.js"
import {
  brokerLayer,
  claims,
  connect,
  connected,
  grantKey,
  newKeyRingLayer,
  PROVIDER,
  refreshRequests,
  sharedMemoryStore,
  storedRefreshToken,
  useDevIdp,
  user
} from "./support/harness.js"

// Time is driven by TestClock: dev-idp issues real 5-minute tokens, and the broker is moved past their
// expiry without waiting.
const dev = useDevIdp({ refreshTokenReuseGraceSeconds: 0 })

describe("backgroundToken: the refresh protocol against dev-idp", () => {
  it.effect("1,000 concurrent calls with an expired access token make exactly one refresh", () =>
    Effect.gen(function* () {
      const { broker, ref } = yield* connected(dev.idp, user(dev.idp), { expire: true })
      dev.idp.counters.reset()
      const tokens = yield* Effect.all(
        Array.from({ length: 1000 }, () => broker.backgroundToken(ref)),
        { concurrency: "unbounded" }
      )
      expect(refreshRequests(dev.idp)).toBe(1)
      expect(new Set(tokens.map((t) => Redacted.value(t.accessToken))).size).toBe(1)
      expect(tokens.every((t) => t.expiresAt > 10 * 60_000)).toBe(true)
      // Served from the cache afterwards: no further request.
      const again = yield* broker.backgroundToken(ref)
      expect(again.source).toBe("cache")
      expect(refreshRequests(dev.idp)).toBe(1)
    }).pipe(Effect.provide(brokerLayer(dev.idp)))
  )

  it.effect(
    "50 refresh cycles: the stored refresh token is always the newest, dev-idp never sees reuse",
    () =>
      Effect.gen(function* () {
        const bob = user(dev.idp, 1)
        const { broker, ref } = yield* connected(dev.idp, bob)
        const store = yield* GrantStore.GrantStore
        dev.idp.counters.reset()
        const seen = new Set<string>()
        let previousVersion = 0
        for (let cycle = 0; cycle < 50; cycle++) {
          yield* TestClock.adjust("6 minutes")
          const token = yield* broker.backgroundToken(ref)
          expect(token.source).toBe("refresh")
          const record = Option.getOrThrow(yield* store.get(grantKey(bob.sub)))
          expect(record.version).toBeGreaterThan(previousVersion)
          previousVersion = record.version
          const refreshToken = yield* storedRefreshToken(bob.sub)
          expect(seen.has(refreshToken)).toBe(false)
          seen.add(refreshToken)
        }
        expect(refreshRequests(dev.idp)).toBe(50)
        const status = Option.getOrThrow(yield* broker.grantStatus(ref))
        expect(status.status).toBe("active")
        expect(status.failureCount).toBe(0)
        expect(status.refreshTokenExpiresAt).not.toBeNull()
      }).pipe(Effect.provide(brokerLayer(dev.idp)))
  )

  it.effect("scope sets are cached apart, carry their scopes, and the grant keeps its full scope", () =>
    Effect.gen(function* () {
      const { broker, ref } = yield* connected(dev.idp, user(dev.idp), { expire: true })
      dev.idp.counters.reset()
      const read = yield* broker.backgroundToken({ ...ref, scopes: ["notes:read"] })
      const write = yield* broker.backgroundToken({ ...ref, scopes: ["notes:write"] })
      const both = yield* broker.backgroundToken(ref)
      expect(claims(read.accessToken).scope).toBe("notes:read")
      expect(claims(write.accessToken).scope).toBe("notes:write")
      expect(String(claims(both.accessToken).scope).split(" ")).toEqual(
        expect.arrayContaining(["notes:read", "notes:write"])
      )
      expect(claims(read.accessToken).aud).toBe(dev.idp.notesAudience)
      expect(refreshRequests(dev.idp)).toBe(3)
      // Cached apart: each scope set is a hit now.
      const again = yield* broker.backgroundToken({ ...ref, scopes: ["notes:read"] })
      expect(again.source).toBe("cache")
      expect(Redacted.value(again.accessToken)).toBe(Redacted.value(read.accessToken))
      const grant = Option.getOrThrow(yield* broker.grantStatus(ref))
      expect(grant.scopes).toEqual(["notes:read", "notes:write"])
      // A scope outside the grant needs consent.
      const error = yield* Effect.flip(broker.backgroundToken({ ...ref, scopes: ["notes:admin"] }))
      expect(error._tag).toBe("ConsentRequired")
      if (error._tag === "ConsentRequired") expect(error.reason).toBe("scope_not_granted")
    }).pipe(Effect.provide(brokerLayer(dev.idp)))
  )

  it.effect("two brokers on one store: a rotation between the other's read and refresh is recovered", () =>
    Effect.gen(function* () {
      const alice = user(dev.idp)
      const shared = sharedMemoryStore()
      const store = yield* Effect.provide(GrantStore.GrantStore, shared)
      const keyRing = newKeyRingLayer()
      const contextA = yield* Layer.build(brokerLayer(dev.idp, { store: shared, keyRing }))
      const brokerA = Context.get(contextA, TokenBroker.TokenBroker)
      yield* Effect.provide(connect(dev.idp, alice), contextA)
      yield* TestClock.adjust("10 minutes")
      dev.idp.counters.reset()
      // Broker B's store runs broker A's rotation the moment B asks for the lease: after B read the
      // grant (and found its token expired), before B refreshes.
      let interleaved = false
      const hooked = Layer.succeed(GrantStore.GrantStore, {
        ...store,
        acquireLease: (name, owner, ttl) =>
          Effect.gen(function* () {
            if (!interleaved) {
              interleaved = true
              yield* brokerA.rotateRefreshToken({ subject: alice.sub, provider: PROVIDER })
            }
            return yield* store.acquireLease(name, owner, ttl)
          }).pipe(Effect.orDie)
      })
      const brokerB = Context.get(
        yield* Layer.build(brokerLayer(dev.idp, { store: hooked, keyRing })),
        TokenBroker.TokenBroker
      )
      const token = yield* brokerB.backgroundToken({ subject: alice.sub, provider: PROVIDER })
      expect(interleaved).toBe(true)
      expect(token.source).toBe("store")
      expect(refreshRequests(dev.idp)).toBe(1)
      const grant = Option.getOrThrow(yield* brokerB.grantStatus({ subject: alice.sub, provider: PROVIDER }))
      expect(grant.status).toBe("active")
    }).pipe(Effect.scoped)
  )

  it.effect(
    "a grant revoked at dev-idp: ConsentRequired with its reason, and the grant is marked, not destroyed",
    () =>
      Effect.gen(function* () {
        const alice = user(dev.idp)
        const { broker, ref } = yield* connected(dev.idp, alice)
        const revoked = yield* Effect.promise(() => dev.idp.revokeGrantOf({ subject: alice.sub }))
        expect(revoked).toBeGreaterThan(0)
        yield* TestClock.adjust("10 minutes")
        const error = yield* Effect.flip(broker.backgroundToken(ref))
        expect(error._tag).toBe("ConsentRequired")
        if (error._tag === "ConsentRequired") expect(error.reason).toBe("invalid_grant")
        const grant = Option.getOrThrow(yield* broker.grantStatus(ref))
        expect(grant.status).toBe("reconsent_required")
        expect(grant.lastErrorCode).toBe("invalid_grant")
        // Later calls answer at once, without asking the provider again.
        dev.idp.counters.reset()
        const again = yield* Effect.flip(broker.backgroundToken(ref))
        expect(again._tag).toBe("ConsentRequired")
        if (again._tag === "ConsentRequired") expect(again.reason).toBe("reconsent_required")
        expect(refreshRequests(dev.idp)).toBe(0)
        // Consent again heals it.
        yield* connect(dev.idp, alice)
        const healed = yield* broker.backgroundToken(ref)
        expect(healed.source).toBe("store")
      }).pipe(Effect.provide(brokerLayer(dev.idp)))
  )

  it.effect("no grant, an unknown provider and a malformed scope are each their own typed error", () =>
    Effect.gen(function* () {
      const broker = yield* TokenBroker.TokenBroker
      const missing = yield* Effect.flip(broker.backgroundToken({ subject: "nobody", provider: PROVIDER }))
      expect(missing._tag).toBe("ConsentRequired")
      if (missing._tag === "ConsentRequired") expect(missing.reason).toBe("no_grant")
      const unknown = yield* Effect.flip(broker.backgroundToken({ subject: "nobody", provider: "elsewhere" }))
      expect(unknown._tag).toBe("ProviderNotFound")
      const bad = yield* Effect.flip(
        broker.backgroundToken({ subject: "x", provider: PROVIDER, scopes: ['bad"scope'] })
      )
      expect(bad._tag).toBe("InvalidRequest")
    }).pipe(Effect.provide(brokerLayer(dev.idp)))
  )

  it.effect("the early refresh of a cached token is jittered by Effect's Random", () =>
    Effect.gen(function* () {
      const alice = user(dev.idp)
      yield* connect(dev.idp, alice)
      const broker = yield* TokenBroker.TokenBroker
      const call = broker.backgroundToken({ subject: alice.sub, provider: PROVIDER })
      yield* TestClock.adjust("10 minutes")
      const fresh = yield* call.pipe(Effect.withRandom(Random.fixed([0.8])))
      expect(fresh.source).toBe("refresh")
      // 60 s x (1 + 0.25 x 0.8) = 72 s before expiry; the 5-minute token's share (25 %) is more
      const refreshAt = fresh.expiresAt - 72_000
      yield* TestClock.adjust(refreshAt - 1 - (yield* Clock.currentTimeMillis))
      expect((yield* call).source).toBe("cache")
      yield* TestClock.adjust(1)
      // Due in the cache; the token stored with the grant is not due yet (its margin has no jitter).
      expect((yield* call).source).toBe("store")
    }).pipe(Effect.provide(brokerLayer(dev.idp, { broker: { earlyRefresh: "60 seconds" } })))
  )

  it.effect("while the provider fails, a cached token is served only with at least 5 s of life left", () =>
    Effect.gen(function* () {
      const { broker, ref } = yield* connected(dev.idp, user(dev.idp))
      const first = yield* broker.backgroundToken(ref)
      dev.idp.faults.inject({ kind: "status", status: 500, count: 1000, grantType: "refresh_token" })
      // past its early refresh, 6 s of life left: the refresh fails, the still-valid token is served
      yield* TestClock.adjust(first.expiresAt - 6_000 - (yield* Clock.currentTimeMillis))
      const served = yield* broker.backgroundToken(ref)
      expect(Redacted.value(served.accessToken)).toBe(Redacted.value(first.accessToken))
      // 4 s left: a caller on a loaded machine could hold it past its expiry; the failure is the answer
      yield* TestClock.adjust("2 seconds")
      const refused = yield* Effect.flip(broker.backgroundToken(ref))
      expect(refused._tag).toBe("UpstreamUnavailable")
    }).pipe(Effect.ensuring(Effect.sync(() => dev.idp.faults.clear())), Effect.provide(brokerLayer(dev.idp)))
  )
})
