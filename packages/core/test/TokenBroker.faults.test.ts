import { describe, expect, it } from "@effect/vitest"
import { Effect, Option, Redacted } from "effect"
import { brokerLayer, connected, refreshRequests, useDevIdp, user } from "./support/harness.js"

// Real time: faults involve retries, Retry-After and timeouts. dev-idp issues 30-second access
// tokens and the broker may spend their whole lifetime on the early refresh (earlyRefreshShare 1), so
// every token is due for refresh at once while it is still valid: exactly the window in which a
// still-valid token may be served during an outage.
const dev = useDevIdp({ accessTokenTtlSeconds: 30 })

const layer = () =>
  brokerLayer(dev.idp, {
    provider: { requestTimeout: "1 second" },
    broker: {
      earlyRefresh: "60 seconds",
      earlyRefreshShare: 1,
      retry: { attempts: 3, baseDelay: "20 millis", deadline: "5 seconds" },
      circuit: { failureThreshold: 3, openFor: "1 second" }
    }
  })

describe("backgroundToken under provider faults", () => {
  it.live("two 429s then success: the refresh succeeds after retries (nothing was processed)", () =>
    Effect.gen(function* () {
      const { broker, ref } = yield* connected(dev.idp, user(dev.idp), { due: true })
      dev.idp.counters.reset()
      dev.idp.faults.inject({
        kind: "rate_limit",
        retryAfterSeconds: 0,
        count: 2,
        grantType: "refresh_token"
      })
      const token = yield* broker.backgroundToken(ref)
      expect(token.source).toBe("refresh")
      expect(refreshRequests(dev.idp)).toBe(3)
      const grant = Option.getOrThrow(yield* broker.grantStatus(ref))
      expect(grant.failureCount).toBe(0)
      expect(grant.status).toBe("active")
    }).pipe(Effect.provide(layer()))
  )

  it.live(
    "a run of 500s: UpstreamUnavailable, while a still-valid token keeps being served; the circuit opens",
    () =>
      Effect.gen(function* () {
        const { broker, ref } = yield* connected(dev.idp, user(dev.idp), { due: true })
        const stored = yield* broker.backgroundToken(ref)
        dev.idp.faults.inject({ kind: "status", status: 500, count: 1000, grantType: "refresh_token" })
        dev.idp.counters.reset()
        // The stored token is due for early refresh but valid for ~30 s: served during the outage.
        const served = yield* broker.backgroundToken(ref)
        expect(Redacted.value(served.accessToken)).toBe(Redacted.value(stored.accessToken))
        // A 500 is not retried: the provider may have rotated the token before failing.
        expect(refreshRequests(dev.idp)).toBe(1)
        // A caller that needs more life than any valid token has gets the typed, retryable error.
        const error = yield* Effect.flip(broker.backgroundToken({ ...ref, minTtl: "30 seconds" }))
        expect(error._tag).toBe("UpstreamUnavailable")
        if (error._tag === "UpstreamUnavailable") {
          expect(error.reason).toBe("server_error")
          expect(error.status).toBe(500)
          expect(error.retryable).toBe(true)
        }
        yield* Effect.flip(broker.backgroundToken({ ...ref, minTtl: "30 seconds" }))
        // Three consecutive failures opened the circuit: the next call does not reach dev-idp.
        expect(refreshRequests(dev.idp)).toBe(3)
        const before = refreshRequests(dev.idp)
        const open = yield* Effect.flip(broker.backgroundToken({ ...ref, minTtl: "30 seconds" }))
        expect(open._tag === "UpstreamUnavailable" && open.reason).toBe("circuit_open")
        expect(refreshRequests(dev.idp)).toBe(before)
        const grant = Option.getOrThrow(yield* broker.grantStatus(ref))
        expect(grant.status).toBe("active")
        expect(grant.failureCount).toBeGreaterThan(0)
        // The provider recovers; after the circuit's pause a trial call closes it again.
        dev.idp.faults.clear()
        yield* Effect.sleep("1100 millis")
        const healed = yield* broker.backgroundToken(ref)
        expect(healed.source).toBe("refresh")
        const after = Option.getOrThrow(yield* broker.grantStatus(ref))
        expect(after.failureCount).toBe(0)
      }).pipe(Effect.provide(layer()))
  )

  it.live("429 honours Retry-After before retrying", () =>
    Effect.gen(function* () {
      const { broker, ref } = yield* connected(dev.idp, user(dev.idp, 1), { due: true })
      dev.idp.counters.reset()
      dev.idp.faults.inject({ kind: "rate_limit", retryAfterSeconds: 1, count: 1 })
      const started = Date.now()
      const token = yield* broker.backgroundToken(ref)
      expect(token.source).toBe("refresh")
      expect(Date.now() - started).toBeGreaterThanOrEqual(1000)
      expect(refreshRequests(dev.idp)).toBe(2)
    }).pipe(Effect.provide(layer()))
  )

  it.live("a hang ends at the timeout, is not retried, and the attempt stays recorded", () =>
    Effect.gen(function* () {
      const { broker, ref } = yield* connected(dev.idp, user(dev.idp, 1), { due: true })
      dev.idp.counters.reset()
      dev.idp.faults.inject({ kind: "hang", count: 1 })
      const error = yield* Effect.flip(broker.backgroundToken({ ...ref, minTtl: "30 seconds" }))
      expect(error._tag === "UpstreamUnavailable" && error.reason).toBe("timeout")
      // Not retried: the provider may have rotated the token before the connection hung.
      expect(refreshRequests(dev.idp)).toBe(1)
      const grant = Option.getOrThrow(yield* broker.grantStatus(ref))
      expect(grant.lastErrorCode).toBe("timeout")
      // dev-idp never answered, so the token was not rotated: the next refresh succeeds.
      const token = yield* broker.backgroundToken({ ...ref, minTtl: "10 seconds" })
      expect(token.source).toBe("refresh")
    }).pipe(Effect.provide(layer()))
  )

  it.live("an injected invalid_grant marks the grant for consent", () =>
    Effect.gen(function* () {
      const { broker, ref } = yield* connected(dev.idp, user(dev.idp), { due: true })
      dev.idp.faults.inject({ kind: "invalid_grant", count: 1 })
      const error = yield* Effect.flip(broker.backgroundToken({ ...ref, minTtl: "30 seconds" }))
      expect(error._tag).toBe("ConsentRequired")
      if (error._tag === "ConsentRequired") expect(error.reason).toBe("invalid_grant")
      expect(error.message).not.toMatch(/eyJ/)
    }).pipe(Effect.provide(layer()))
  )
})
