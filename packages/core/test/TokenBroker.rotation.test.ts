import { randomBytes } from "node:crypto"
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Duration, Effect, Fiber, Layer, Option, Redacted, TestClock } from "effect"
import {
  type GrantKey,
  GrantStore,
  KeyRing,
  KeyRotation,
  StorageUnavailable,
  TokenBroker
} from "../src/index.js"
import {
  type BrokerSetup,
  brokerLayer,
  connect,
  connected,
  driveAs,
  grantKey,
  PROVIDER,
  refreshRequests,
  type Store,
  storeLayer,
  useDevIdp,
  user
} from "./support/harness.js"

// Cases of issue 12 where a rotated refresh token was dropped or the lease protocol let it be lost.
// dev-idp rotates refresh tokens and revokes the whole grant on any reuse (no grace), so a dropped
// successor shows as ConsentRequired on the next refresh. Time is TestClock: dev-idp's 5-minute tokens
// are expired by moving the broker's clock.
const dev = useDevIdp({ refreshTokenReuseGraceSeconds: 0 })

const localKey = (kid: string) => ({ kid, key: Redacted.make(new Uint8Array(randomBytes(32))) })

/** A broker over `store`: the test's own instance, which it reads and often wraps with faults. */
const brokerOn = (store: Store, setup: Omit<BrokerSetup, "store"> = {}) =>
  brokerLayer(dev.idp, { store: storeLayer(store), ...setup })

/** An onRefreshStep hook that runs `act` once, at the first `at` step of a refresh of the test. */
const onceAt = (at: TokenBroker.RefreshStep, act: (key: GrantKey) => Effect.Effect<void>) => {
  let done = false
  return (step: TokenBroker.RefreshStep, key: GrantKey) =>
    step !== at || done
      ? Effect.void
      : Effect.suspend(() => {
          done = true
          return act(key)
        })
}

/** `real()`, unless `budget.failures` is above zero: then one is used up and the call fails as a blip. */
const blipOr = <A, E>(budget: { failures: number }, operation: string, real: () => Effect.Effect<A, E>) =>
  Effect.suspend((): Effect.Effect<A, E | StorageUnavailable> => {
    if (budget.failures === 0) return real()
    budget.failures -= 1
    return Effect.fail(new StorageUnavailable({ operation, message: `${operation} blip (test)` }))
  })

/** After the first token: expire it, refresh once more; the grant must still be alive at dev-idp. */
const expectGrantAlive = (subject: string) =>
  Effect.gen(function* () {
    const broker = yield* TokenBroker.TokenBroker
    yield* TestClock.adjust("10 minutes")
    const next = yield* broker.backgroundToken({ subject, provider: PROVIDER })
    expect(next.source).toBe("refresh")
    const grant = Option.getOrThrow(yield* broker.grantStatus({ subject, provider: PROVIDER }))
    expect(grant.status).toBe("active")
  })

describe("a rotated refresh token is never dropped", () => {
  it.effect("case 1: keys rotate while a refresh holds the lease: the rotation waits, nothing is lost", () =>
    Effect.gen(function* () {
      const alice = user(dev.idp)
      const memory = yield* GrantStore.makeMemory
      const k1 = localKey("k1")
      const k2 = localKey("k2")
      // The running broker still writes under k1 but reads k2; `keys rotate` makes k2 current.
      const brokerRing = KeyRing.layerLocal({ keys: [k1, k2], current: "k1" })
      const rotatorRing = KeyRing.layerLocal({ keys: [k1, k2], current: "k2" })
      const rotationActed = yield* Deferred.make<void>()
      const rotatorStore: Store = {
        ...memory,
        acquireLease: (name, owner, ttl) =>
          Effect.tap(memory.acquireLease(name, owner, ttl), () => Deferred.succeed(rotationActed, undefined)),
        compareAndSet: (key, version, next) =>
          Effect.tap(memory.compareAndSet(key, version, next), () =>
            Deferred.succeed(rotationActed, undefined)
          )
      }
      let rotation: Fiber.RuntimeFiber<KeyRotation.ReencryptResult, StorageUnavailable> | undefined
      const onRefreshStep = onceAt("after_upstream", () =>
        Effect.gen(function* () {
          // Between dev-idp's answer and the write: `keys rotate` reaches this grant.
          rotation = yield* Effect.forkDaemon(
            KeyRotation.reencryptAll().pipe(
              Effect.provide(Layer.merge(storeLayer(rotatorStore), Layer.orDie(rotatorRing)))
            )
          )
          yield* Deferred.await(rotationActed)
        })
      )
      yield* Effect.gen(function* () {
        const { broker, ref } = yield* connected(dev.idp, alice, { expire: true })
        const token = yield* broker.backgroundToken(ref)
        expect(token.source).toBe("refresh")
        yield* TestClock.adjust("1 second")
        const result = yield* Fiber.join(rotation as NonNullable<typeof rotation>)
        expect(result).toMatchObject({ scanned: 1, reencrypted: 1, failed: 0, kidsInUse: ["k2"] })
        const record = Option.getOrThrow(yield* memory.get(grantKey(alice.sub)))
        const ring = yield* KeyRing.KeyRing
        expect(ring.kidOf(record.refreshToken)).toBe("k2")
        yield* expectGrantAlive(alice.sub)
      }).pipe(Effect.provide(brokerOn(memory, { keyRing: brokerRing, broker: { onRefreshStep } })))
    })
  )

  it.effect(
    "case 1: a writer that bumps the version without the lease: the rotated token lands on the new version",
    () =>
      Effect.gen(function* () {
        const bob = user(dev.idp, 1)
        const memory = yield* GrantStore.makeMemory
        let bumped = false
        const onRefreshStep = onceAt("after_upstream", (key) =>
          Effect.gen(function* () {
            bumped = true
            // A metadata writer (an older `keys rotate`, an admin tool) rewrites the same grant.
            const record = Option.getOrThrow(yield* memory.get(key))
            const next = { ...record, version: record.version + 1, updatedAt: record.updatedAt + 1 }
            expect(yield* memory.compareAndSet(key, record.version, next)).toBe("ok")
          }).pipe(Effect.orDie)
        )
        yield* Effect.gen(function* () {
          const { broker, ref } = yield* connected(dev.idp, bob, { expire: true })
          const token = yield* broker.backgroundToken(ref)
          expect(token.source).toBe("refresh")
          expect(bumped).toBe(true)
          yield* expectGrantAlive(bob.sub)
        }).pipe(Effect.provide(brokerOn(memory, { broker: { onRefreshStep } })))
      })
  )

  it.effect(
    "case 5: encryption and the store fail right after the provider rotated: retried until written",
    () =>
      Effect.gen(function* () {
        const alice = user(dev.idp)
        const memory = yield* GrantStore.makeMemory
        const ring = yield* KeyRing.makeLocal({ keys: [localKey("k1")] })
        const encryptBlips = { failures: 0 }
        const casBlips = { failures: 0 }
        const flakyRing = Layer.succeed(KeyRing.KeyRing, {
          ...ring,
          encrypt: (plain, aad) => blipOr(encryptBlips, "encrypt", () => ring.encrypt(plain, aad))
        })
        const flakyStore: Store = {
          ...memory,
          compareAndSet: (key, version, next) =>
            blipOr(casBlips, "compareAndSet", () => memory.compareAndSet(key, version, next))
        }
        const answered = yield* Deferred.make<void>()
        let armed = false
        const onRefreshStep = (step: TokenBroker.RefreshStep) =>
          step === "before_upstream"
            ? Effect.sync(() => {
                if (!armed) {
                  armed = true
                  // A Transit blip, then a store outage of about two seconds of retries.
                  encryptBlips.failures = 2
                  casBlips.failures = 12
                }
              })
            : step === "after_upstream"
              ? Deferred.succeed(answered, undefined)
              : Effect.void
        yield* Effect.gen(function* () {
          const { broker, ref } = yield* connected(dev.idp, alice, { expire: true })
          dev.idp.counters.reset()
          const call = yield* Effect.fork(broker.backgroundToken(ref))
          yield* Effect.raceFirst(Deferred.await(answered), Effect.asVoid(Fiber.await(call)))
          // Drive the retry backoff: the clock moves only while the call is still retrying.
          while (Option.isNone(yield* Fiber.poll(call))) {
            yield* TestClock.adjust("100 millis")
          }
          const token = yield* Fiber.join(call)
          expect(token.source).toBe("refresh")
          expect(refreshRequests(dev.idp)).toBe(1)
          const record = Option.getOrThrow(yield* memory.get(grantKey(alice.sub)))
          expect(record.refreshStartedAt).toBeNull()
          yield* expectGrantAlive(alice.sub)
        }).pipe(Effect.provide(brokerOn(flakyStore, { keyRing: flakyRing, broker: { onRefreshStep } })))
      })
  )

  it.effect(
    "case 6: the grant is deleted while its refresh runs: nothing is served or cached, the successor is revoked",
    () =>
      Effect.gen(function* () {
        const bob = user(dev.idp, 1)
        const memory = yield* GrantStore.makeMemory
        const onRefreshStep = onceAt("after_upstream", (key) =>
          memory.delete(key).pipe(Effect.asVoid, Effect.orDie)
        )
        yield* Effect.gen(function* () {
          const { broker, ref } = yield* connected(dev.idp, bob, { expire: true })
          const revocationsBefore = dev.idp.revocations.list().length
          const error = yield* Effect.flip(broker.backgroundToken(ref))
          expect(error._tag === "ConsentRequired" && error.reason).toBe("no_grant")
          expect(broker.cachedToken(ref)).toBeUndefined()
          expect(dev.idp.revocations.list().length).toBe(revocationsBefore + 1)
          expect(Option.isNone(yield* memory.get(grantKey(bob.sub)))).toBe(true)
        }).pipe(Effect.provide(brokerOn(memory, { broker: { onRefreshStep } })))
      })
  )

  it.effect(
    "case 6: revoke beside a refresh in the same process waits for it and revokes the newest token",
    () =>
      Effect.gen(function* () {
        const alice = user(dev.idp)
        const memory = yield* GrantStore.makeMemory
        let revoking: Fiber.RuntimeFiber<TokenBroker.RevokeResult, unknown> | undefined
        const brokerRef: { current: TokenBroker.TokenBrokerService | undefined } = { current: undefined }
        const onRefreshStep = onceAt("after_upstream", () =>
          Effect.gen(function* () {
            const broker = brokerRef.current
            if (broker === undefined) return yield* Effect.dieMessage("a refresh before the broker was built")
            revoking = yield* Effect.forkDaemon(broker.revoke({ subject: alice.sub, provider: PROVIDER }))
            // Give the revoke every chance to run ahead of this refresh's write.
            for (let i = 0; i < 50; i++) yield* Effect.yieldNow()
          })
        )
        yield* Effect.gen(function* () {
          const { broker, ref } = yield* connected(dev.idp, alice, { expire: true })
          brokerRef.current = broker
          yield* Effect.either(broker.backgroundToken(ref))
          const result = yield* Fiber.join(revoking as NonNullable<typeof revoking>)
          expect(result.removed).toBe(true)
          expect(result.upstream).toBe("revoked")
          expect(broker.cachedToken(ref)).toBeUndefined()
          expect(Option.isNone(yield* memory.get(grantKey(alice.sub)))).toBe(true)
        }).pipe(Effect.provide(brokerOn(memory, { broker: { onRefreshStep } })))
      })
  )
})

describe("the lease of a refresh", () => {
  it.effect("case 2: one failed renewal does not end a refresh; its result is written", () =>
    Effect.gen(function* () {
      const alice = user(dev.idp)
      const memory = yield* GrantStore.makeMemory
      const renewalBlips = { failures: 0 }
      const flaky: Store = {
        ...memory,
        renewLease: (name, owner, ttl) =>
          blipOr(renewalBlips, "renewLease", () => memory.renewLease(name, owner, ttl))
      }
      const onRefreshStep = onceAt("after_upstream", () =>
        Effect.gen(function* () {
          renewalBlips.failures = 1
          // The first renewal (at a third of the ttl) fails once, between the answer and the write.
          yield* TestClock.adjust("1500 millis")
        })
      )
      yield* Effect.gen(function* () {
        const { broker, ref } = yield* connected(dev.idp, alice, { expire: true })
        const token = yield* broker.backgroundToken(ref)
        expect(token.source).toBe("refresh")
        expect(renewalBlips.failures).toBe(0)
        yield* expectGrantAlive(alice.sub)
      }).pipe(Effect.provide(brokerOn(flaky, { broker: { onRefreshStep, lease: shortLease } })))
    })
  )

  it.effect(
    "case 3: a renewal that hangs past the lease's expiry stops the refresh before the provider",
    () =>
      Effect.gen(function* () {
        const bob = user(dev.idp, 1)
        const memory = yield* GrantStore.makeMemory
        let hang = false
        const stuck: Store = {
          ...memory,
          renewLease: (name, owner, ttl) =>
            Effect.suspend(() => (hang ? Effect.never : memory.renewLease(name, owner, ttl)))
        }
        const onRefreshStep = onceAt("before_upstream", () =>
          Effect.gen(function* () {
            hang = true
            // Renewals hang; the lease (3 s) runs out on the clock before the upstream call.
            yield* TestClock.adjust("4 seconds")
          })
        )
        yield* Effect.gen(function* () {
          const { broker, ref } = yield* connected(dev.idp, bob, { expire: true })
          dev.idp.counters.reset()
          const error = yield* Effect.flip(broker.backgroundToken(ref))
          expect(error._tag === "UpstreamUnavailable" && error.reason).toBe("lease_timeout")
          expect(refreshRequests(dev.idp)).toBe(0)
          hang = false
          // Nothing was sent: the marker is cleared and the next refresh works.
          const record = Option.getOrThrow(yield* memory.get(grantKey(bob.sub)))
          expect(record.refreshStartedAt).toBeNull()
          yield* expectGrantAlive(bob.sub)
        }).pipe(Effect.provide(brokerOn(stuck, { broker: { onRefreshStep, lease: shortLease } })))
      })
  )

  it.effect(
    "case 6: each acquisition of a grant's lease has its own owner, so one broker excludes itself",
    () =>
      Effect.gen(function* () {
        const bob = user(dev.idp, 1)
        const memory = yield* GrantStore.makeMemory
        const owners: Array<string> = []
        const recording: Store = {
          ...memory,
          acquireLease: (name, owner, ttl) =>
            Effect.suspend(() => {
              owners.push(owner)
              return memory.acquireLease(name, owner, ttl)
            })
        }
        yield* Effect.gen(function* () {
          const { broker, ref } = yield* connected(dev.idp, bob, { expire: true })
          yield* broker.backgroundToken(ref)
          yield* broker.revoke(ref)
          expect(owners.length).toBe(2)
          expect(new Set(owners).size).toBe(2)
          for (const owner of owners) expect(owner.startsWith("broker-1/")).toBe(true)
        }).pipe(Effect.provide(brokerOn(recording, { broker: { instanceId: "broker-1" } })))
      })
  )

  it.effect("case 13: an acquisition that committed but timed out is released", () =>
    Effect.gen(function* () {
      const memory = yield* GrantStore.makeMemory
      const committed = yield* Deferred.make<void>()
      // The store commits the lease, then the answer never arrives.
      const slow: Store = {
        ...memory,
        acquireLease: (name, owner, ttl) =>
          memory
            .acquireLease(name, owner, ttl)
            .pipe(Effect.zipRight(Deferred.succeed(committed, undefined)), Effect.zipRight(Effect.never))
      }
      const attempt = yield* Effect.fork(
        GrantStore.withLease(
          slow,
          "grant:y",
          "instance-1",
          { ttl: Duration30s, wait: Duration1s },
          () => Effect.void
        )
      )
      yield* Deferred.await(committed)
      yield* TestClock.adjust("2 seconds")
      const outcome = yield* Effect.either(Fiber.join(attempt))
      expect(
        outcome._tag === "Left" && [
          outcome.left._tag,
          outcome.left.code,
          "lease" in outcome.left && outcome.left.lease
        ]
      ).toEqual(["LeaseTimeout", "lease_timeout", "grant:y"])
      expect(yield* memory.acquireLease("grant:y", "someone-else", Duration.seconds(30))).toBe(true)
    })
  )

  it.effect("case 13: a refresh token that does not decrypt leaves no attempt marker behind", () =>
    Effect.gen(function* () {
      const alice = user(dev.idp)
      const memory = yield* GrantStore.makeMemory
      yield* connect(dev.idp, alice).pipe(Effect.provide(brokerOn(memory)))
      // Another key ring (a misconfigured replica) cannot decrypt the grant.
      yield* Effect.gen(function* () {
        const broker = yield* TokenBroker.TokenBroker
        yield* TestClock.adjust("10 minutes")
        const error = yield* Effect.flip(broker.backgroundToken({ subject: alice.sub, provider: PROVIDER }))
        expect(error._tag).toBe("DecryptionFailed")
        const record = Option.getOrThrow(yield* memory.get(grantKey(alice.sub)))
        expect(record.refreshStartedAt).toBeNull()
      }).pipe(Effect.provide(brokerOn(memory)))
    })
  )
})

const Duration1s = "1 second" as const
const Duration30s = "30 seconds" as const
/** A lease short enough for a test to run it out on the TestClock. */
const shortLease = { ttl: "3 seconds", wait: "2 seconds" } as const

describe("key retirement and pending consents (case 13)", () => {
  it.effect("a consent started under a key retired since asks to start again, not a server error", () =>
    Effect.gen(function* () {
      const alice = user(dev.idp)
      const memory = yield* GrantStore.makeMemory
      const k1 = localKey("k1")
      const k2 = localKey("k2")
      const started = yield* Effect.gen(function* () {
        const broker = yield* TokenBroker.TokenBroker
        return yield* broker.startAuthorization({ subject: alice.sub, provider: PROVIDER })
      }).pipe(Effect.provide(brokerOn(memory, { keyRing: KeyRing.layerLocal({ keys: [k1] }) })))
      const callback = yield* driveAs(dev.idp, started.authorizationUrl, alice)
      // Meanwhile: keys rotate to k2, k1 is retired, brokers restart with k2 only.
      const error = yield* Effect.gen(function* () {
        const broker = yield* TokenBroker.TokenBroker
        return yield* Effect.flip(broker.completeAuthorization(callback))
      }).pipe(Effect.provide(brokerOn(memory, { keyRing: KeyRing.layerLocal({ keys: [k2] }) })))
      expect(error._tag).toBe("AuthorizationNotPending")
      expect(error.message).toMatch(/start it again/)
    })
  )
})
