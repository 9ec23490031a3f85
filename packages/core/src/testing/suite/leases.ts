import { describe, expect } from "@effect/vitest"
import { Cause, Deferred, Duration, Effect, Exit, Fiber, Option, Ref } from "effect"
import { LeaseLost, withLease } from "../../GrantStore.js"
import { lease, owner, type SuiteIt, store } from "./shared.js"

/** Leases within one process: acquire, renew, release, expiry and withLease. */
export const suiteLeases = (it: SuiteIt): void => {
  describe("leases", () => {
    const ttl = Duration.seconds(10)

    it.effect("a lease excludes other owners until released", () =>
      Effect.gen(function* () {
        const driver = yield* store
        const [name, a, b] = [lease(), owner("a"), owner("b")]
        expect(yield* driver.acquireLease(name, a, ttl)).toBe(true)
        expect(yield* driver.acquireLease(name, b, ttl)).toBe(false)
        yield* driver.releaseLease(name, a)
        expect(yield* driver.acquireLease(name, b, ttl)).toBe(true)
        expect(yield* driver.acquireLease(name, a, ttl)).toBe(false)
        expect(yield* driver.acquireLease(lease(), a, ttl)).toBe(true)
      })
    )

    it.effect("the owner may acquire again (re-entrant) and renew; others may not renew", () =>
      Effect.gen(function* () {
        const driver = yield* store
        const [name, a, b] = [lease(), owner("a"), owner("b")]
        expect(yield* driver.renewLease(name, a, ttl)).toBe(false)
        expect(yield* driver.acquireLease(name, a, ttl)).toBe(true)
        expect(yield* driver.acquireLease(name, a, ttl)).toBe(true)
        expect(yield* driver.renewLease(name, b, ttl)).toBe(false)
        expect(yield* driver.renewLease(name, a, ttl)).toBe(true)
        expect(yield* driver.acquireLease(name, b, ttl)).toBe(false)
      })
    )

    it.effect("release by another owner does nothing (F4)", () =>
      Effect.gen(function* () {
        const driver = yield* store
        const [name, a, b] = [lease(), owner("a"), owner("b")]
        expect(yield* driver.acquireLease(name, a, ttl)).toBe(true)
        yield* driver.releaseLease(name, b)
        expect(yield* driver.acquireLease(name, b, ttl)).toBe(false)
        expect(yield* driver.renewLease(name, a, ttl)).toBe(true)
        yield* driver.releaseLease(lease(), a)
      })
    )

    it.effect("a lease expires after its ttl; the expired owner can no longer renew it", () =>
      Effect.gen(function* () {
        const driver = yield* store
        const [name, a, b] = [lease(), owner("a"), owner("b")]
        expect(yield* driver.acquireLease(name, a, Duration.millis(400))).toBe(true)
        expect(yield* driver.acquireLease(name, b, ttl)).toBe(false)
        yield* Effect.sleep(Duration.millis(700))
        expect(yield* driver.renewLease(name, a, ttl)).toBe(false)
        expect(yield* driver.acquireLease(name, b, ttl)).toBe(true)
        expect(yield* driver.acquireLease(name, a, ttl)).toBe(false)
        expect(yield* driver.renewLease(name, b, ttl)).toBe(true)
      })
    )

    it.effect("withLease runs effects one at a time under contention", () =>
      Effect.gen(function* () {
        const driver = yield* store
        const name = lease()
        const inside = yield* Ref.make(0)
        const most = yield* Ref.make(0)
        const runs = yield* Ref.make(0)
        const critical = Effect.gen(function* () {
          const n = yield* Ref.updateAndGet(inside, (x) => x + 1)
          yield* Ref.update(most, (m) => Math.max(m, n))
          yield* Effect.sleep(Duration.millis(15))
          yield* Ref.update(inside, (x) => x - 1)
          yield* Ref.update(runs, (x) => x + 1)
        })
        yield* Effect.forEach(
          Array.from({ length: 8 }, () => owner("w")),
          (o) => withLease(driver, name, o, { ttl, wait: Duration.seconds(20) }, critical),
          { concurrency: "unbounded", discard: true }
        )
        expect(yield* Ref.get(runs)).toBe(8)
        expect(yield* Ref.get(most)).toBe(1)
      })
    )

    it.effect("withLease renews the lease while the effect runs longer than the ttl", () =>
      Effect.gen(function* () {
        const driver = yield* store
        const [name, a, b] = [lease(), owner("a"), owner("b")]
        // Real time is unavoidable (SQL stores keep leases on the database clock), so the window is
        // wide: a 3 s lease, renewed every second, checked 4.5 s after it was taken. Only a renewal
        // that never happens (or an event loop stalled for two seconds) lets b in.
        const short = Duration.seconds(3)
        const held = yield* Deferred.make<void>()
        const done = yield* Deferred.make<void>()
        const fiber = yield* Effect.fork(
          withLease(
            driver,
            name,
            a,
            { ttl: short, wait: ttl },
            Deferred.succeed(held, undefined).pipe(Effect.zipRight(Deferred.await(done)))
          )
        )
        yield* Deferred.await(held)
        yield* Effect.sleep(Duration.millis(4500))
        expect(yield* driver.acquireLease(name, b, ttl)).toBe(false)
        yield* Deferred.succeed(done, undefined)
        expect(Exit.isSuccess(yield* Fiber.await(fiber))).toBe(true)
        expect(yield* driver.acquireLease(name, b, ttl)).toBe(true)
      })
    )

    it.effect("withLease releases the lease when the effect fails", () =>
      Effect.gen(function* () {
        const driver = yield* store
        const [name, a, b] = [lease(), owner("a"), owner("b")]
        const exit = yield* Effect.exit(withLease(driver, name, a, { ttl, wait: ttl }, Effect.fail("boom")))
        expect(exit).toEqual(Exit.fail("boom"))
        expect(yield* driver.acquireLease(name, b, ttl)).toBe(true)
      })
    )

    it.effect("withLease releases the lease when interrupted", () =>
      Effect.gen(function* () {
        const driver = yield* store
        const [name, a, b] = [lease(), owner("a"), owner("b")]
        const held = yield* Deferred.make<void>()
        const fiber = yield* Effect.fork(
          withLease(
            driver,
            name,
            a,
            { ttl, wait: ttl },
            Deferred.succeed(held, undefined).pipe(Effect.zipRight(Effect.never))
          )
        )
        yield* Deferred.await(held)
        expect(yield* driver.acquireLease(name, b, ttl)).toBe(false)
        yield* Fiber.interrupt(fiber)
        expect(yield* driver.acquireLease(name, b, ttl)).toBe(true)
      })
    )

    it.effect("withLease fails with LeaseLost when another owner took the lease over", () =>
      Effect.gen(function* () {
        const driver = yield* store
        const [name, a, b] = [lease(), owner("a"), owner("b")]
        const short = Duration.millis(300)
        const held = yield* Deferred.make<void>()
        const fiber = yield* Effect.fork(
          withLease(
            driver,
            name,
            a,
            { ttl: short, wait: ttl },
            Deferred.succeed(held, undefined).pipe(Effect.zipRight(Effect.never))
          )
        )
        yield* Deferred.await(held)
        // simulate a holder whose renewals stall: the lease row is taken over after a release
        yield* driver.releaseLease(name, a)
        expect(yield* driver.acquireLease(name, b, ttl)).toBe(true)
        const exit = yield* Fiber.await(fiber)
        expect(exit).toEqual(Exit.fail(new LeaseLost({ lease: name })))
        const error = Exit.isFailure(exit) ? Cause.failureOption(exit.cause) : Option.none()
        expect(Option.map(error, (e) => [e._tag, e.code, "lease" in e && e.lease])).toEqual(
          Option.some(["LeaseLost", "lease_lost", name])
        )
        expect(yield* driver.renewLease(name, b, ttl)).toBe(true)
      })
    )
  })
}
