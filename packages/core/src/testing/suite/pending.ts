import { describe, expect } from "@effect/vitest"
import { Clock, Duration, Effect, Option } from "effect"
import { freshStateHash, freshTenant, pendingRecord } from "../fixtures.js"
import { type SuiteIt, store } from "./shared.js"

/** Pending authorizations: put, take once, expiry. */
export const suitePending = (it: SuiteIt): void => {
  describe("pending authorizations", () => {
    it.effect("put then take returns the record once", () =>
      Effect.gen(function* () {
        const driver = yield* store
        const state = freshStateHash()
        const record = pendingRecord(freshTenant(), yield* Clock.currentTimeMillis, {
          returnTo: "https://app.example.test/done?x=1&y=ü"
        })
        yield* driver.putPending(state, record)
        expect(yield* driver.takePending(state)).toEqual(Option.some(record))
        expect(Option.isNone(yield* driver.takePending(state))).toBe(true)
      })
    )

    it.effect("take of an unknown state is None", () =>
      Effect.gen(function* () {
        const driver = yield* store
        expect(Option.isNone(yield* driver.takePending(freshStateHash()))).toBe(true)
      })
    )

    it.effect("an expired pending authorization is never returned", () =>
      Effect.gen(function* () {
        const driver = yield* store
        const state = freshStateHash()
        const now = yield* Clock.currentTimeMillis
        yield* driver.putPending(state, pendingRecord(freshTenant(), now - 700_000, { expiresAt: now - 1 }))
        expect(Option.isNone(yield* driver.takePending(state))).toBe(true)
        const soon = freshStateHash()
        yield* driver.putPending(soon, pendingRecord(freshTenant(), now, { expiresAt: now + 300 }))
        yield* Effect.sleep(Duration.millis(450))
        expect(Option.isNone(yield* driver.takePending(soon))).toBe(true)
      })
    )

    it.effect("concurrent takes: exactly one gets the record", () =>
      Effect.gen(function* () {
        const driver = yield* store
        const state = freshStateHash()
        const record = pendingRecord(freshTenant(), yield* Clock.currentTimeMillis)
        yield* driver.putPending(state, record)
        const taken = yield* Effect.all(
          Array.from({ length: 12 }, () => driver.takePending(state)),
          { concurrency: "unbounded" }
        )
        expect(taken.filter(Option.isSome)).toEqual([Option.some(record)])
      })
    )

    it.effect("pending authorizations are independent of each other", () =>
      Effect.gen(function* () {
        const driver = yield* store
        const now = yield* Clock.currentTimeMillis
        const [s1, s2] = [freshStateHash(), freshStateHash()]
        const [r1, r2] = [pendingRecord(freshTenant(), now), pendingRecord(freshTenant(), now)]
        yield* driver.putPending(s1, r1)
        yield* driver.putPending(s2, r2)
        expect(yield* driver.takePending(s2)).toEqual(Option.some(r2))
        expect(yield* driver.takePending(s1)).toEqual(Option.some(r1))
      })
    )
  })
}
