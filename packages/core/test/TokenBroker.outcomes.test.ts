import { randomBytes } from "node:crypto"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Option, Redacted, TestClock } from "effect"
import { AuthorizationServer, GrantStore, KeyRing, TokenBroker } from "../src/index.js"
import { minimalRecord } from "../src/testing.js"
import {
  brokerLayer,
  connected,
  grantKey,
  PROVIDER,
  providerConfig,
  refreshRequests,
  type User,
  useDevIdp,
  user
} from "./support/harness.js"
import { type AnswerFault, useProxiedDevIdp } from "./support/tokenProxy.js"

// Outcomes of issue 12: what a caller sees when the provider's answer is lost or unusable, and how the
// early-refresh margin and minTtl behave. dev-idp rotates and revokes the grant on any reuse.
const dev = useProxiedDevIdp({ refreshTokenReuseGraceSeconds: 0 })
// A provider issuing 60-second access tokens (the early-refresh margin's own length).
const short = useDevIdp({ refreshTokenReuseGraceSeconds: 0, accessTokenTtlSeconds: 60 })

/** The broker reaches dev-idp through the proxy that can spoil an answer after dev-idp processed it. */
const proxied = (broker: TokenBroker.TokenBrokerOptions = {}) =>
  brokerLayer(dev.idp, {
    provider: { internalBaseUrl: { from: dev.idp.issuer, to: dev.proxy.url } },
    broker: { retry: { attempts: 3, baseDelay: "10 millis", deadline: "5 seconds" }, ...broker }
  })

/**
 * `who`'s access token has expired, and `fault` spoils the answer of the refresh that follows after
 * dev-idp processed it. Returns the caller's error, the refresh requests that went out for it, and the
 * grant's stored record afterwards.
 */
const spoiledRefresh = (who: User, fault: AnswerFault) =>
  Effect.gen(function* () {
    const { broker, ref } = yield* connected(dev.idp, who, { expire: true })
    const store = yield* GrantStore.GrantStore
    const before = dev.proxy.refreshes()
    dev.proxy.afterNextRefresh(fault)
    const error = yield* Effect.flip(broker.backgroundToken(ref))
    const sent = dev.proxy.refreshes() - before
    const record = Option.getOrThrow(yield* store.get(grantKey(who.sub)))
    return { broker, ref, error, sent, record }
  })

describe("outcome unknown (case 4)", () => {
  it.effect("a 502 after the provider rotated is not retried; the later invalid_grant is rotation_lost", () =>
    Effect.gen(function* () {
      const { broker, ref, error, sent, record } = yield* spoiledRefresh(user(dev.idp), {
        kind: "status",
        status: 502
      })
      expect(error._tag === "UpstreamUnavailable" && error.status).toBe(502)
      // Not retried with the consumed token: that would be reuse, and dev-idp revokes the grant.
      expect(sent).toBe(1)
      expect(record.refreshStartedAt).not.toBeNull()
      expect(record.status).toBe("active")
      // The rotation did happen at dev-idp: the stored token is refused, and said to be a lost rotation.
      const next = yield* Effect.flip(broker.backgroundToken(ref))
      expect(next._tag === "ConsentRequired" && next.reason).toBe("rotation_lost")
    }).pipe(Effect.provide(proxied()))
  )

  it.effect("a 2xx the client library refuses (token_type) still yields its refresh token", () =>
    Effect.gen(function* () {
      const { broker, ref, error, record } = yield* spoiledRefresh(user(dev.idp, 1), { kind: "token_type" })
      expect(error._tag).toBe("UpstreamRejected")
      expect(error.message).not.toMatch(/eyJ/)
      expect(record.refreshStartedAt).toBeNull()
      // The salvaged successor was stored: the next refresh works and the grant stays active.
      const token = yield* broker.backgroundToken(ref)
      expect(token.source).toBe("refresh")
      const grant = Option.getOrThrow(yield* broker.grantStatus(ref))
      expect(grant.status).toBe("active")
    }).pipe(Effect.provide(proxied()))
  )

  it.effect("a 2xx that is not JSON is outcome unknown: not retried, the attempt marker stays", () =>
    Effect.gen(function* () {
      const { error, sent, record } = yield* spoiledRefresh(user(dev.idp), { kind: "not_json" })
      expect(error._tag).toBe("UpstreamUnavailable")
      expect(sent).toBe(1)
      expect(record.refreshStartedAt).not.toBeNull()
    }).pipe(Effect.provide(proxied()))
  )
})

describe("the early-refresh margin and minTtl (cases 7, 8)", () => {
  it.effect("case 7: a minTtl below the margin is still enforced on a refreshed token", () =>
    Effect.gen(function* () {
      const { broker, ref } = yield* connected(short.idp, user(short.idp), { expire: true })
      // The provider issues 60 s tokens; 90 s is asked, under the 120 s margin.
      const error = yield* Effect.flip(broker.backgroundToken({ ...ref, minTtl: "90 seconds" }))
      expect(error._tag === "InvalidRequest" && error.field).toBe("minTtl")
    }).pipe(Effect.provide(brokerLayer(short.idp, { broker: { earlyRefresh: "120 seconds" } })))
  )

  it.effect(
    "case 8: 60 s tokens are not refreshed on every call, and an impossible minTtl costs no refresh",
    () =>
      Effect.gen(function* () {
        const { broker, ref } = yield* connected(short.idp, user(short.idp, 1), { expire: true })
        short.idp.counters.reset()
        const first = yield* broker.backgroundToken(ref)
        expect(first.source).toBe("refresh")
        const again = yield* broker.backgroundToken(ref)
        expect(again.source).toBe("cache")
        yield* TestClock.adjust("20 seconds")
        const later = yield* broker.backgroundToken(ref)
        expect(later.source).toBe("cache")
        expect(refreshRequests(short.idp)).toBe(1)
        // Longer than the provider's tokens ever live: refused before any upstream call.
        const error = yield* Effect.flip(broker.backgroundToken({ ...ref, minTtl: "5 minutes" }))
        expect(error._tag === "InvalidRequest" && error.field).toBe("minTtl")
        expect(refreshRequests(short.idp)).toBe(1)
        // Later in the token's life it is refreshed once, ahead of expiry.
        yield* TestClock.adjust("35 seconds")
        const renewed = yield* broker.backgroundToken(ref)
        expect(renewed.source).toBe("refresh")
        expect(renewed.expiresAt - first.expiresAt).toBeGreaterThanOrEqual(55_000)
      }).pipe(Effect.provide(brokerLayer(short.idp)))
  )
})

describe("the circuit (case 9)", () => {
  it.effect("a half-open trial that dies does not leave the circuit open", () =>
    Effect.gen(function* () {
      const real = yield* AuthorizationServer.make([providerConfig(dev.idp)])
      let dieNext = false
      const dying = Layer.succeed(AuthorizationServer.AuthorizationServers, {
        ...real,
        get: (id: string) =>
          Effect.map(real.get(id), (client) => ({
            ...client,
            refresh: (request: Parameters<typeof client.refresh>[0]) =>
              Effect.suspend(() => {
                if (!dieNext) return client.refresh(request)
                dieNext = false
                return Effect.die(new Error("a bug in the provider client (test)"))
              })
          }))
      })
      yield* Effect.gen(function* () {
        const { broker, ref } = yield* connected(dev.idp, user(dev.idp), { expire: true })
        // A refusal the provider answered with 429 and no retry budget: the circuit opens.
        dev.idp.faults.inject({ kind: "rate_limit", retryAfterSeconds: 0, count: 1 })
        const limited = yield* Effect.flip(broker.backgroundToken(ref))
        expect(limited._tag === "UpstreamUnavailable" && limited.reason).toBe("rate_limited")
        yield* TestClock.adjust("2 seconds")
        dieNext = true
        const died = yield* Effect.exit(broker.backgroundToken(ref))
        expect(died._tag).toBe("Failure")
        yield* TestClock.adjust("2 seconds")
        const healed = yield* broker.backgroundToken(ref)
        expect(healed.source).toBe("refresh")
      }).pipe(
        Effect.provide(
          brokerLayer(dev.idp, {
            authorizationServers: dying,
            broker: { retry: { attempts: 1 }, circuit: { failureThreshold: 1, openFor: "1 second" } }
          })
        )
      )
    })
  )
})

describe("revoke what cannot be read (case 12)", () => {
  const foreignGrant = (subject: string, provider: string) =>
    Effect.gen(function* () {
      const foreign = yield* KeyRing.makeLocal({
        keys: [{ kid: "k1", key: Redacted.make(new Uint8Array(randomBytes(32))) }]
      })
      const key = grantKey(subject, provider)
      const record = minimalRecord(key, {
        refreshToken: yield* foreign.encrypt(Redacted.make("rt"), KeyRing.aadFor(key, "refresh_token")),
        scopes: ["notes:read"],
        createdAt: 0,
        updatedAt: 0
      })
      const store = yield* GrantStore.GrantStore
      expect(yield* store.insert(record)).toBe("ok")
    })

  it.effect("a grant that does not decrypt is deleted locally; the upstream part is reported failed", () =>
    Effect.gen(function* () {
      yield* foreignGrant("carol", PROVIDER)
      const broker = yield* TokenBroker.TokenBroker
      const result = yield* broker.revoke({ subject: "carol", provider: PROVIDER })
      expect(result.removed).toBe(true)
      expect(result.upstream).toBe("failed")
      expect(result.upstreamError?.code).toBe("decryption_failed")
      expect(Option.isNone(yield* broker.grantStatus({ subject: "carol", provider: PROVIDER }))).toBe(true)
    }).pipe(Effect.provide(brokerLayer(dev.idp)))
  )

  it.effect("a grant of a provider no longer configured is deleted locally", () =>
    Effect.gen(function* () {
      yield* foreignGrant("dave", "retired")
      const broker = yield* TokenBroker.TokenBroker
      const result = yield* broker.revoke({ subject: "dave", provider: "retired" })
      expect(result.removed).toBe(true)
      expect(result.upstream).toBe("failed")
      expect(result.upstreamError?.code).toBe("provider_not_found")
    }).pipe(Effect.provide(brokerLayer(dev.idp)))
  )
})

describe("a caller reports a token refused upstream (case 14)", () => {
  it.effect(
    "the token is dropped, the next call refreshes; refusals after three refreshes need consent",
    () =>
      Effect.gen(function* () {
        const { broker, ref } = yield* connected(dev.idp, user(dev.idp))
        const first = yield* broker.backgroundToken(ref)
        expect(first.source).toBe("store")
        dev.idp.counters.reset()
        let token = first
        for (let strike = 1; strike <= 3; strike++) {
          const after = Option.getOrThrow(
            yield* broker.reportRejected({ ...ref, accessToken: token.accessToken })
          )
          expect(after.failureCount).toBe(strike)
          expect(after.lastErrorCode).toBe("access_token_rejected")
          expect(after.status).toBe(strike < 3 ? "active" : "reconsent_required")
          expect(broker.cachedToken(ref)).toBeUndefined()
          if (strike < 3) {
            token = yield* broker.backgroundToken(ref)
            expect(token.source).toBe("refresh")
            // A report of a token already replaced is not a strike.
            const stale = Option.getOrThrow(
              yield* broker.reportRejected({ ...ref, accessToken: first.accessToken })
            )
            expect(stale.failureCount).toBe(strike)
          }
        }
        expect(refreshRequests(dev.idp)).toBe(2)
        const error = yield* Effect.flip(broker.backgroundToken(ref))
        expect(error._tag === "ConsentRequired" && error.reason).toBe("access_token_rejected")
      }).pipe(Effect.provide(brokerLayer(dev.idp)))
  )

  it.effect("a refresh without a report in between clears the strikes", () =>
    Effect.gen(function* () {
      const { broker, ref } = yield* connected(dev.idp, user(dev.idp, 1))
      const first = yield* broker.backgroundToken(ref)
      yield* broker.reportRejected({ ...ref, accessToken: first.accessToken })
      yield* broker.backgroundToken(ref)
      yield* broker.rotateRefreshToken(ref)
      const grant = Option.getOrThrow(yield* broker.grantStatus(ref))
      expect(grant.failureCount).toBe(0)
      expect(grant.lastErrorCode).toBeNull()
      expect(grant.status).toBe("active")
    }).pipe(Effect.provide(brokerLayer(dev.idp)))
  )
})
