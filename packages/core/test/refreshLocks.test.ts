import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Fiber } from "effect"
import { makeGrantLocks } from "../src/internal/refreshLocks.js"

describe("grant locks", () => {
  it.scoped("one holder per grant at a time; no lock is left once its last caller is gone", () =>
    Effect.gen(function* () {
      const locks = yield* makeGrantLocks
      const gate = yield* Deferred.make<void>()
      const inside = yield* Deferred.make<void>()
      const order: Array<string> = []
      const first = yield* Effect.fork(
        locks.withLock(
          "g",
          Deferred.succeed(inside, undefined).pipe(
            Effect.zipRight(Deferred.await(gate)),
            Effect.zipRight(Effect.sync(() => order.push("first")))
          )
        )
      )
      yield* Deferred.await(inside)
      const second = yield* Effect.fork(
        locks.withLock(
          "g",
          Effect.sync(() => order.push("second"))
        )
      )
      const other = yield* locks.withLock("h", Effect.succeed("not blocked by g"))
      expect(other).toBe("not blocked by g")
      // A waiter that gives up leaves the queue and keeps nothing alive.
      const quitter = yield* Effect.fork(
        locks.withLock(
          "g",
          Effect.sync(() => order.push("quitter"))
        )
      )
      yield* Effect.yieldNow()
      expect(yield* locks.held).toBe(1)
      yield* Fiber.interrupt(quitter)
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(first)
      yield* Fiber.join(second)
      expect(order).toEqual(["first", "second"])
      expect(yield* locks.held).toBe(0)
    })
  )
})
