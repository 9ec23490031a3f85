import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Option, Redacted, TestClock } from "effect"
import * as client from "openid-client"
import { AuthorizationServer, GrantStore, KeyRing, StorageUnavailable } from "../src/index.js"
import {
  brokerLayer,
  connected,
  grantKey,
  providerConfig,
  type Store,
  storeLayer,
  useDevIdp,
  user
} from "./support/harness.js"

const dev = useDevIdp()

describe("refresh protocol edge cases", () => {
  it.effect("a refresh response without a refresh token keeps the stored one (F7)", () =>
    Effect.gen(function* () {
      const alice = user(dev.idp)
      const { broker, ref } = yield* connected(dev.idp, alice, { expire: true })
      const store = yield* GrantStore.GrantStore
      const before = Option.getOrThrow(yield* store.get(grantKey(alice.sub)))
      const token = yield* broker.backgroundToken(ref)
      expect(token.source).toBe("refresh")
      const after = Option.getOrThrow(yield* store.get(grantKey(alice.sub)))
      expect(after.refreshToken).toBe(before.refreshToken)
      expect(after.version).toBeGreaterThan(before.version)
      expect(after.accessToken?.expiresAt).toBe(token.expiresAt)
      expect(after.scopes).toEqual(before.scopes)
      expect(after.identity).toEqual(before.identity)
    }).pipe(
      Effect.provide(
        Layer.unwrapEffect(
          Effect.gen(function* () {
            // A provider that never returns a refresh token on refresh: the real client, response trimmed.
            const real = yield* AuthorizationServer.make([providerConfig(dev.idp)])
            const trimming = {
              ...real,
              get: (id: string) =>
                Effect.map(real.get(id), (c) => ({
                  ...c,
                  refresh: (request: Parameters<typeof c.refresh>[0]) =>
                    Effect.map(c.refresh(request), (set) => ({ ...set, refreshToken: null }))
                }))
            }
            return brokerLayer(dev.idp, {
              authorizationServers: Layer.succeed(AuthorizationServer.AuthorizationServers, trimming)
            })
          }).pipe(Effect.orDie)
        )
      )
    )
  )

  it.effect(
    "a rotation lost in a crash (marker set, token rotated elsewhere) is ConsentRequired rotation_lost",
    () =>
      Effect.gen(function* () {
        const bob = user(dev.idp, 1)
        const { broker, ref } = yield* connected(dev.idp, bob)
        const store = yield* GrantStore.GrantStore
        const ring = yield* KeyRing.KeyRing
        const record = Option.getOrThrow(yield* store.get(grantKey(bob.sub)))
        // A process marked the attempt, reached the provider (which rotated the token), then died before
        // writing the result.
        const stored = yield* ring.decrypt(record.refreshToken, KeyRing.aadFor(record, "refresh_token"))
        const cfg = providerConfig(dev.idp)
        yield* Effect.promise(async () => {
          const server = await client.discovery(
            new URL(dev.idp.issuer),
            cfg.clientId,
            undefined,
            client.ClientSecretBasic(dev.idp.client("token-broker").clientSecret ?? ""),
            { execute: [client.allowInsecureRequests] }
          )
          await client.refreshTokenGrant(server, Redacted.value(stored))
        })
        expect(
          yield* store.compareAndSet(record, record.version, {
            ...record,
            version: record.version + 1,
            refreshStartedAt: 1
          })
        ).toBe("ok")
        yield* TestClock.adjust("10 minutes")
        const error = yield* Effect.flip(broker.backgroundToken(ref))
        expect(error._tag === "ConsentRequired" && error.reason).toBe("rotation_lost")
        const grant = Option.getOrThrow(yield* broker.grantStatus(ref))
        expect(grant.status).toBe("reconsent_required")
        expect(grant.lastErrorCode).toBe("rotation_lost")
        const again = yield* Effect.flip(broker.backgroundToken(ref))
        expect(again._tag === "ConsentRequired" && again.reason).toBe("rotation_lost")
      }).pipe(Effect.provide(brokerLayer(dev.idp)))
  )
})

describe("onRefreshStep", () => {
  it.effect("reports before_upstream, after_upstream and after_write in order, once per refresh", () =>
    Effect.gen(function* () {
      const { broker, ref } = yield* connected(dev.idp, user(dev.idp), { expire: true })
      yield* broker.backgroundToken(ref)
      yield* broker.backgroundToken(ref)
      expect(steps).toEqual(["before_upstream", "after_upstream", "after_write"])
    }).pipe(
      Effect.provide(
        brokerLayer(dev.idp, {
          broker: { onRefreshStep: (step) => Effect.sync(() => steps.push(step)) }
        })
      )
    )
  )
})

const steps: Array<string> = []

describe("fail closed when the store is down (F5)", () => {
  it.effect("a still-valid cached token is served while the store fails; otherwise StorageUnavailable", () =>
    Effect.gen(function* () {
      const memory = yield* GrantStore.makeMemory
      let down = false
      const failing = <A>(effect: Effect.Effect<A, StorageUnavailable>) =>
        Effect.suspend(() =>
          down ? Effect.fail(new StorageUnavailable({ operation: "get", message: "store is down" })) : effect
        )
      const flaky: Store = {
        ...memory,
        get: (key) => failing(memory.get(key)),
        acquireLease: (name, owner, ttl) => failing(memory.acquireLease(name, owner, ttl))
      }
      const layer = brokerLayer(dev.idp, { store: storeLayer(flaky), broker: { earlyRefresh: "60 seconds" } })
      yield* Effect.gen(function* () {
        const { broker, ref } = yield* connected(dev.idp, user(dev.idp))
        const first = yield* broker.backgroundToken(ref)
        // Inside the early-refresh window (but still valid): the broker wants to refresh.
        yield* TestClock.setTime(first.expiresAt - 30_000)
        down = true
        const served = yield* broker.backgroundToken(ref)
        expect(Redacted.value(served.accessToken)).toBe(Redacted.value(first.accessToken))
        // A caller that needs more life than the token has gets the retryable error.
        const error = yield* Effect.flip(broker.backgroundToken({ ...ref, minTtl: "45 seconds" }))
        expect(error._tag).toBe("StorageUnavailable")
        down = false
        const healed = yield* broker.backgroundToken({ ...ref, minTtl: "45 seconds" })
        expect(healed.source).toBe("refresh")
      }).pipe(Effect.provide(layer))
    })
  )
})
