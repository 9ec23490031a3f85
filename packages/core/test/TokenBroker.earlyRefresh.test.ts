import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Clock, Effect, Random, TestClock } from "effect"
import { TokenBroker } from "../src/index.js"
import { brokerLayer, connect, PROVIDER, user, withDevIdp } from "./support/harness.js"

// dev-idp issues 300-second access tokens; the early refresh is 60 s, spread by up to a quarter.
const dev = withDevIdp()
beforeAll(dev.start)
afterAll(dev.stop)

describe("the early refresh of a cached token", () => {
  it.effect("is jittered by Effect's Random: the cache serves a token until its jittered refresh time", () =>
    Effect.gen(function* () {
      const alice = user(dev.idp)
      yield* connect(dev.idp, alice)
      const broker = yield* TokenBroker.TokenBroker
      const call = broker.backgroundToken({ subject: alice.sub, provider: PROVIDER })
      yield* TestClock.adjust("10 minutes")
      const fresh = yield* call.pipe(Effect.withRandom(Random.fixed([0.8])))
      expect(fresh.source).toBe("refresh")
      // 60 s x (1 + 0.25 x 0.8) = 72 s before expiry
      const refreshAt = fresh.expiresAt - 72_000
      yield* TestClock.adjust(refreshAt - 1 - (yield* Clock.currentTimeMillis))
      expect((yield* call).source).toBe("cache")
      yield* TestClock.adjust(1)
      // Due in the cache; the token stored with the grant is not due yet (its margin has no jitter).
      expect((yield* call).source).toBe("store")
    }).pipe(Effect.provide(brokerLayer(dev.idp, { broker: { earlyRefresh: "60 seconds" } })))
  )
})
