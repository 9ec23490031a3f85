import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { type DevIdp, startDevIdp } from "@token-broker/dev-idp"
import { Chunk, Clock, Effect, Either, Fiber, Option, Queue, Random, Redacted, TestClock } from "effect"
import * as AuthorizationServer from "../src/AuthorizationServer.js"
import { makeRefreshUpstream, type RefreshUpstreamSettings } from "../src/internal/refreshUpstream.js"
import { providerConfig } from "./support/harness.js"

// The retry policy of a refresh, on the TestClock with a fixed Random for the jitter (effect 3 has no
// TestRandom module; `Random.fixed` cycles through the given numbers): how many requests reach dev-idp
// and how long the broker waits before each retry.
let idp: DevIdp
beforeAll(async () => {
  idp = await startDevIdp()
})
afterAll(() => idp.close())

const settings = (overrides: Partial<RefreshUpstreamSettings> = {}): RefreshUpstreamSettings => ({
  retryAttempts: 3,
  retryBaseDelayMs: 200,
  retryDeadlineMs: 10_000,
  circuitFailureThreshold: 100,
  circuitOpenMs: 1_000,
  ...overrides
})

const refreshTokenOfAlice = Effect.promise(async () => {
  const alice = idp.users.find((u) => u.username === "alice")
  if (alice === undefined) throw new Error("dev-idp has no alice")
  const client = idp.client("token-broker")
  const tokens = await idp.login({
    clientId: client.clientId,
    username: alice.username,
    password: alice.password,
    scopes: ["notes:read", "offline_access", "openid"],
    resource: idp.notesAudience
  })
  return Redacted.make(tokens.refresh_token ?? "")
})

/**
 * Runs one refresh through the retry policy, moving the TestClock to each retry's wake-up once the
 * retry sleeps. Answers the outcome and the wait before each request after the first.
 */
const refreshWithRetries = (retry: RefreshUpstreamSettings, jitter: [number, ...Array<number>] = [0.5]) =>
  Effect.gen(function* () {
    const servers = yield* AuthorizationServer.make([providerConfig(idp)])
    const client = yield* servers.get("notes")
    const refreshToken = yield* refreshTokenOfAlice
    const sentAt: Array<number> = []
    const answered = yield* Queue.unbounded<void>()
    const observed: AuthorizationServer.ProviderClient = {
      ...client,
      refresh: (request) =>
        Clock.currentTimeMillis.pipe(
          Effect.tap((now) => sentAt.push(now)),
          Effect.zipRight(client.refresh(request)),
          Effect.ensuring(Queue.offer(answered, undefined))
        )
    }
    const fiber = yield* Effect.fork(
      makeRefreshUpstream(retry)(observed, refreshToken, null).pipe(
        Effect.either,
        Effect.withRandom(Random.fixed(jitter))
      )
    )
    for (;;) {
      yield* Effect.raceFirst(Queue.take(answered), Effect.asVoid(Fiber.await(fiber)))
      // After an answer the call either ends or goes to sleep until its retry: wait for one of them.
      while (Option.isNone(yield* Fiber.poll(fiber)) && Chunk.isEmpty(yield* TestClock.sleeps())) {
        yield* Effect.yieldNow()
      }
      const wake = Chunk.head(yield* TestClock.sleeps())
      if (Option.isNone(wake)) break
      yield* TestClock.setTime(wake.value)
    }
    const outcome = yield* Fiber.join(fiber)
    return { outcome, waits: sentAt.slice(1).map((at, i) => at - (sentAt[i] ?? at)) }
  })

const rateLimited = (retryAfterSeconds: number, count: number) =>
  idp.faults.inject({ kind: "rate_limit", retryAfterSeconds, count, grantType: "refresh_token" })

describe("refresh retries", () => {
  it.effect("answers that prove nothing was processed are retried with jittered exponential backoff", () =>
    Effect.gen(function* () {
      idp.faults.clear()
      rateLimited(0, 10)
      // 200 ms x 2^n, times 0.5 + a random number in [0, 1)
      const { outcome, waits } = yield* refreshWithRetries(settings(), [0.25, 0.75, 0.5])
      expect(
        Either.isLeft(outcome) && outcome.left._tag === "UpstreamUnavailable" && outcome.left.reason
      ).toBe("rate_limited")
      expect(waits).toHaveLength(2)
      expect(waits[0]).toBeCloseTo(200 * 0.75, 6)
      expect(waits[1]).toBeCloseTo(400 * 1.25, 6)
      idp.faults.clear()
    })
  )

  it.effect("Retry-After is the floor of a wait; the refresh succeeds once the provider answers", () =>
    Effect.gen(function* () {
      idp.faults.clear()
      rateLimited(1, 2)
      const { outcome, waits } = yield* refreshWithRetries(settings({ retryBaseDelayMs: 600 }), [0.25, 0.99])
      expect(Either.isRight(outcome)).toBe(true)
      // 600 x 0.75 = 450 is under the 1 s Retry-After; 1200 x 1.49 = 1788 is over it
      expect(waits).toHaveLength(2)
      expect(waits[0]).toBeCloseTo(1000, 6)
      expect(waits[1]).toBeCloseTo(1200 * 1.49, 6)
    })
  )

  it.effect("gives up when the next wait would pass the deadline", () =>
    Effect.gen(function* () {
      idp.faults.clear()
      rateLimited(1, 10)
      // the first wait (1 s) ends at 1 s, inside the 1.5 s deadline; the second would end at 2 s
      const { outcome, waits } = yield* refreshWithRetries(
        settings({ retryAttempts: 5, retryDeadlineMs: 1_500 })
      )
      expect(
        Either.isLeft(outcome) && outcome.left._tag === "UpstreamUnavailable" && outcome.left.reason
      ).toBe("rate_limited")
      expect(waits).toEqual([1000])
      idp.faults.clear()
    })
  )

  it.effect("a wait that ends exactly at the deadline is still taken", () =>
    Effect.gen(function* () {
      idp.faults.clear()
      rateLimited(1, 10)
      const { waits } = yield* refreshWithRetries(
        settings({ retryAttempts: 5, retryDeadlineMs: 2_000 }),
        [0.5, 0.5, 0.5]
      )
      expect(waits).toEqual([1000, 1000])
      idp.faults.clear()
    })
  )

  it.effect("an answer that may follow a rotation (a 500) is not retried", () =>
    Effect.gen(function* () {
      idp.faults.clear()
      idp.faults.inject({ kind: "status", status: 500, count: 10, grantType: "refresh_token" })
      const { outcome, waits } = yield* refreshWithRetries(settings())
      expect(
        Either.isLeft(outcome) && outcome.left._tag === "UpstreamUnavailable" && outcome.left.status
      ).toBe(500)
      expect(waits).toEqual([])
      idp.faults.clear()
    })
  )
})
