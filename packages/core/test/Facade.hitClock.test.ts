import { randomBytes } from "node:crypto"
import { Effect, Layer, ManagedRuntime, Metric, Redacted, TestClock, TestContext } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { makeTokenBrokerClient } from "../src/Facade.js"
import { GrantStore, KeyRing, Metrics } from "../src/index.js"
import type { ScheduleExpiry } from "../src/internal/coarseClock.js"
import { PROVIDER, providerConfig, user, withDevIdp } from "./support/harness.js"

// The facade answers hits against a coarse upper bound of its runtime's clock. Here that clock is a
// TestClock (dev-idp issues real 5-minute tokens; the broker is moved along them without waiting) and the
// hit clock's window timer fires when the test says, as the event loop would once the window passed.
const dev = withDevIdp()
beforeAll(dev.start)
afterAll(dev.stop)

const WINDOW_MS = 100
const MIN_TTL_MS = 200_000

const hitsCounted = () =>
  Effect.runSync(
    Metric.value(
      Metrics.tokenRequests.pipe(Metric.tagged("provider", PROVIDER), Metric.tagged("result", "hit"))
    )
  ).count

const setUp = async () => {
  const testRuntime = ManagedRuntime.make(TestContext.TestContext)
  const testClock = await testRuntime.runPromise(TestClock.testClock())
  const timer: { expire: (() => void) | undefined } = { expire: undefined }
  const schedule: ScheduleExpiry = (expire) => {
    timer.expire = expire
    return () => {
      timer.expire = undefined
    }
  }
  const broker = await makeTokenBrokerClient(
    {
      store: GrantStore.layerMemory,
      keyRing: KeyRing.layerLocal({
        keys: [{ kid: "k1", key: Redacted.make(new Uint8Array(randomBytes(32))) }]
      }),
      providers: [providerConfig(dev.idp)]
    },
    { services: Layer.setClock(testClock), hitClock: { windowMs: WINDOW_MS, schedule } }
  )
  const alice = user(dev.idp)
  const { authorizationUrl } = await broker.startAuthorization({ subject: alice.sub, provider: PROVIDER })
  await broker.completeAuthorization(
    await dev.idp.driveAuthorization(authorizationUrl, { username: alice.username, password: alice.password })
  )
  return {
    broker,
    request: { subject: alice.sub, provider: PROVIDER },
    setTime: (ms: number) => Effect.runPromise(testClock.setTime(ms)),
    windowPassed: () => {
      const expire = timer.expire
      timer.expire = undefined
      expire?.()
    },
    close: async () => {
      await broker.close()
      await testRuntime.dispose()
    }
  }
}

describe("createTokenBroker: cache hits against the coarse clock", () => {
  it("serves no token that lives less than asked, with the clock's reading up to its window old", async () => {
    const { broker, request, setTime, windowPassed, close } = await setUp()
    try {
      const first = await broker.backgroundToken(request)
      const expiresAt = first.expiresAt
      // Left with 50 ms more than asked: the exact clock serves the cached token, the coarse bound does not.
      windowPassed()
      const readAt = expiresAt - MIN_TTL_MS - 50
      await setTime(readAt)
      const served = await broker.backgroundToken({ ...request, minTtl: MIN_TTL_MS })
      expect(served).toMatchObject({ source: "cache", expiresAt })
      // 60 ms later, within the window of that reading: 10 ms short of the minimum, so never served.
      await setTime(readAt + 60)
      const later = await broker.backgroundToken({ ...request, minTtl: MIN_TTL_MS })
      expect(later.source).toBe("refresh")
      expect(later.expiresAt - (readAt + 60)).toBeGreaterThanOrEqual(MIN_TTL_MS)
    } finally {
      await close()
    }
  })

  it("reads the clock again once the window passed", async () => {
    const { broker, request, setTime, windowPassed, close } = await setUp()
    try {
      const first = await broker.backgroundToken(request)
      expect(await broker.backgroundToken(request)).toMatchObject({
        source: "cache",
        expiresAt: first.expiresAt
      })
      // The reading was taken near the token's start; 150 s on, it lives less than asked.
      await setTime(first.expiresAt - MIN_TTL_MS + 50_000)
      windowPassed()
      const later = await broker.backgroundToken({ ...request, minTtl: MIN_TTL_MS })
      expect(later.source).toBe("refresh")
      // And past the token's early refresh and expiry, the next hit is a refresh too.
      await setTime(later.expiresAt + 1)
      windowPassed()
      const expired = await broker.backgroundToken(request)
      expect(expired.source).toBe("refresh")
      expect(expired.expiresAt).toBeGreaterThan(later.expiresAt)
    } finally {
      await close()
    }
  })

  it("counts each hit, answers a frozen token, and answers the same one while the entry lives", async () => {
    const { broker, request, close } = await setUp()
    try {
      await broker.backgroundToken(request)
      const before = hitsCounted()
      const a = await broker.backgroundToken(request)
      const b = await broker.backgroundToken(request)
      expect(hitsCounted() - before).toBe(2)
      expect(a.source).toBe("cache")
      expect(b).toBe(a)
      expect(Object.isFrozen(a)).toBe(true)
      expect(typeof a.accessToken).toBe("string")
    } finally {
      await close()
    }
  })
})
