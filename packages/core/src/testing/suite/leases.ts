import { describe, expect } from "@effect/vitest"
import { Cause, Deferred, Duration, Effect, Exit, Fiber, Option, Ref } from "effect"
import { type GrantStoreDriver, LeaseLost, withLease } from "../../GrantStore.js"
import { lease, owner, type SuiteIt, store } from "./shared.js"

/** The ttl of every lease the suite takes, unless a test says otherwise; also how long it waits. */
const ttl = Duration.seconds(10)

/**
 * Forks `withLease` holding `name` for `holder` (renewed on `leaseTtl`) while `body` runs, and returns
 * the fiber once the lease is held.
 */
const forkHolding = <E>(
  driver: GrantStoreDriver,
  name: string,
  holder: string,
  leaseTtl: Duration.Duration,
  body: Effect.Effect<void, E>
) =>
  Effect.gen(function* () {
    const held = yield* Deferred.make<void>()
    const fiber = yield* Effect.fork(
      withLease(
        driver,
        name,
        holder,
        { ttl: leaseTtl, wait: ttl },
        Deferred.succeed(held, undefined).pipe(Effect.zipRight(body))
      )
    )
    yield* Deferred.await(held)
    return fiber
  })

/** One step on a lease: who acquires, renews or releases it, and what acquire or renew must answer. */
type LeaseStep =
  | readonly [operation: "acquire" | "renew", owner: string, answer: boolean]
  | readonly [operation: "release", owner: string]

/** Runs `steps` on the lease `name` in order (ttl `ttl`), checking every answer. */
const expectLeaseSteps = (driver: GrantStoreDriver, name: string, steps: ReadonlyArray<LeaseStep>) =>
  Effect.forEach(steps, (step, index) =>
    step[0] === "release"
      ? driver.releaseLease(name, step[1])
      : Effect.map(
          step[0] === "acquire"
            ? driver.acquireLease(name, step[1], ttl)
            : driver.renewLease(name, step[1], ttl),
          (answer) => {
            expect(answer, `step ${index + 1} (${step[0]})`).toBe(step[2])
          }
        )
  )

/** Lease scenarios on a fresh lease between two owners `a` and `b`, one step a line. */
const scenarios: ReadonlyArray<{
  readonly title: string
  readonly steps: (a: string, b: string) => ReadonlyArray<LeaseStep>
}> = [
  {
    title: "a lease excludes other owners until released",
    steps: (a, b) => [
      ["acquire", a, true],
      ["acquire", b, false],
      ["release", a],
      ["acquire", b, true],
      ["acquire", a, false]
    ]
  },
  {
    title: "the owner may acquire again (re-entrant) and renew; others may not renew",
    steps: (a, b) => [
      ["renew", a, false],
      ["acquire", a, true],
      ["acquire", a, true],
      ["renew", b, false],
      ["renew", a, true],
      ["acquire", b, false]
    ]
  },
  {
    title: "release by another owner does nothing (F4)",
    steps: (a, b) => [
      ["acquire", a, true],
      ["release", b],
      ["acquire", b, false],
      ["renew", a, true]
    ]
  }
]

/** Leases within one process: acquire, renew, release, expiry and withLease. */
export const suiteLeases = (it: SuiteIt): void => {
  describe("leases", () => {
    for (const { title, steps } of scenarios) {
      it.effect(title, () =>
        Effect.gen(function* () {
          const driver = yield* store
          const [name, a, b] = [lease(), owner("a"), owner("b")]
          yield* expectLeaseSteps(driver, name, steps(a, b))
          // another lease: releasing one never taken does nothing, and it is free to take
          yield* expectLeaseSteps(driver, lease(), [
            ["release", a],
            ["acquire", a, true]
          ])
        })
      )
    }

    it.effect("a lease expires after its ttl; the expired owner can no longer renew it", () =>
      Effect.gen(function* () {
        const driver = yield* store
        const [name, a, b] = [lease(), owner("a"), owner("b")]
        expect(yield* driver.acquireLease(name, a, Duration.millis(400))).toBe(true)
        expect(yield* driver.acquireLease(name, b, ttl)).toBe(false)
        yield* Effect.sleep(Duration.millis(700))
        yield* expectLeaseSteps(driver, name, [
          ["renew", a, false],
          ["acquire", b, true],
          ["acquire", a, false],
          ["renew", b, true]
        ])
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
        const done = yield* Deferred.make<void>()
        const fiber = yield* forkHolding(driver, name, a, Duration.seconds(3), Deferred.await(done))
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
        const fiber = yield* forkHolding(driver, name, a, ttl, Effect.never)
        expect(yield* driver.acquireLease(name, b, ttl)).toBe(false)
        yield* Fiber.interrupt(fiber)
        expect(yield* driver.acquireLease(name, b, ttl)).toBe(true)
      })
    )

    it.effect("withLease fails with LeaseLost when another owner took the lease over", () =>
      Effect.gen(function* () {
        const driver = yield* store
        const [name, a, b] = [lease(), owner("a"), owner("b")]
        const fiber = yield* forkHolding(driver, name, a, Duration.millis(300), Effect.never)
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
