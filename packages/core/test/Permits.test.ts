import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Fiber } from "effect"
import { makePermits } from "../src/internal/permits.js"

describe("Permits (the refresh cap)", () => {
  it.effect("never lets more than the permits run at once, and serves waiters first come, first served", () =>
    Effect.gen(function* () {
      const permits = makePermits(2)
      let running = 0
      let peak = 0
      const order: Array<number> = []
      const gate = yield* Deferred.make<void>()
      const task = (i: number) =>
        permits.withPermit(
          Effect.gen(function* () {
            running += 1
            peak = Math.max(peak, running)
            order.push(i)
            yield* Deferred.await(gate)
            running -= 1
          })
        )
      const fibers = yield* Effect.forEach([0, 1, 2, 3, 4, 5], (i) => Effect.fork(task(i)))
      yield* Effect.yieldNow()
      expect(order).toEqual([0, 1])
      expect(permits.waiting()).toBe(4)
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.joinAll(fibers)
      expect(order).toEqual([0, 1, 2, 3, 4, 5])
      expect(peak).toBe(2)
      expect(permits.waiting()).toBe(0)
    })
  )

  it.effect("a waiter interrupted in the queue leaves it; a failing holder gives its permit back", () =>
    Effect.gen(function* () {
      const permits = makePermits(1)
      const gate = yield* Deferred.make<void>()
      const holder = yield* Effect.fork(permits.withPermit(Deferred.await(gate)))
      yield* Effect.yieldNow()
      const queued = yield* Effect.fork(permits.withPermit(Effect.void))
      yield* Effect.yieldNow()
      expect(permits.waiting()).toBe(1)
      yield* Fiber.interrupt(queued)
      expect(permits.waiting()).toBe(0)
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(holder)
      const failed = yield* Effect.flip(permits.withPermit(Effect.fail("boom")))
      expect(failed).toBe("boom")
      // The permit came back both times: the next caller runs at once.
      expect(yield* permits.withPermit(Effect.succeed("ran"))).toBe("ran")
    })
  )
})

describe("Permits.admit (queued work without a fiber)", () => {
  it("starts work while permits are free, queues the rest as callbacks, and hands each release on in order", () => {
    const permits = makePermits(2)
    const started: Array<number> = []
    for (let i = 0; i < 5; i++) permits.admit(() => started.push(i))
    expect(started).toEqual([0, 1])
    expect(permits.waiting()).toBe(3)
    permits.release()
    expect(started).toEqual([0, 1, 2])
    permits.release()
    permits.release()
    expect(started).toEqual([0, 1, 2, 3, 4])
    expect(permits.waiting()).toBe(0)
    permits.release()
    permits.release()
    // both permits free again: the next two start at once
    permits.admit(() => started.push(5))
    permits.admit(() => started.push(6))
    expect(started).toEqual([0, 1, 2, 3, 4, 5, 6])
  })
})
