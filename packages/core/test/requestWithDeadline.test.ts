import { Deferred, Effect, Exit, Fiber } from "effect"
import { describe, expect, it } from "vitest"
import { requestWithDeadline } from "../src/index.js"

/** A request that settles only when its signal aborts: with the signal's reason. */
const hanging = (signal: AbortSignal) =>
  new Promise<never>((_resolve, reject) =>
    signal.addEventListener("abort", () => reject(signal.reason), { once: true })
  )

describe("requestWithDeadline", () => {
  it("answers what the request answers, and what onError makes of a rejection", async () => {
    expect(await Effect.runPromise(requestWithDeadline(60_000, async () => 42, String))).toBe(42)
    const failed = await Effect.runPromiseExit(
      requestWithDeadline(
        60_000,
        async () => {
          throw new Error("refused")
        },
        (cause) => `mapped: ${(cause as Error).message}`
      )
    )
    expect(failed).toEqual(Exit.fail("mapped: refused"))
    // a request that throws before it makes a promise fails the same way
    const thrown = await Effect.runPromiseExit(
      requestWithDeadline(
        60_000,
        () => {
          throw new TypeError("bad input")
        },
        (cause) => (cause as Error).name
      )
    )
    expect(thrown).toEqual(Exit.fail("TypeError"))
  })

  it("aborts the request with a TimeoutError when its time is up", async () => {
    const exit = await Effect.runPromiseExit(
      requestWithDeadline(20, hanging, (cause) => (cause instanceof Error ? cause.name : "other"))
    )
    expect(exit).toEqual(Exit.fail("TimeoutError"))
  })

  it("aborts the request when the fiber is interrupted", async () => {
    const program = Effect.gen(function* () {
      const aborted = yield* Deferred.make<unknown>()
      const fiber = yield* Effect.fork(
        requestWithDeadline(
          60_000,
          (signal) => {
            signal.addEventListener("abort", () => Deferred.unsafeDone(aborted, Exit.succeed(signal.reason)))
            return hanging(signal)
          },
          String
        )
      )
      yield* Effect.yieldNow()
      const exit = yield* Fiber.interrupt(fiber)
      // the abort, and not the time budget: the reason is the plain AbortError of `abort()`
      const reason = yield* Deferred.await(aborted)
      return { interrupted: Exit.isInterrupted(exit), reason: (reason as Error).name }
    })
    expect(await Effect.runPromise(program)).toEqual({ interrupted: true, reason: "AbortError" })
  })
})
