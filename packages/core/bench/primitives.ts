/**
 * The measurements behind core's choices between Effect's own primitives and a helper of ours. Each
 * section prints its figures; the first comment of each helper quotes them.
 *
 *   cd packages/core && node --expose-gc --import tsx bench/primitives.ts
 *
 * - semaphore: N fibers wait on one permit (Effect.makeSemaphore(1) vs permits.ts); per release, how many
 *   waiters are woken (a waiter that is woken and finds no permit queues again) and the time to drain.
 * - grant locks: the per-grant lock of refreshLocks.ts (RcMap of permits), per call uncontended and per
 *   waiter under contention (time, heap per waiting caller).
 * - cache: whether Effect's Cache cancels a shared lookup for every waiter when its first caller is
 *   interrupted (singleFlight.ts runs the flight in the broker's scope instead).
 */
import { performance } from "node:perf_hooks"
import { Cache, Deferred, Duration, Effect, Exit, Fiber } from "effect"
import { makePermits, type Permits } from "../src/internal/permits.js"
import { makeGrantLocks } from "../src/internal/refreshLocks.js"

const gc = (globalThis as { gc?: () => void }).gc
const heap = () => {
  for (let i = 0; i < 3; i++) gc?.()
  return process.memoryUsage().heapUsed
}

/** One step of work that crosses the event loop, as a refresh under the cap does. */
const work = Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))

/**
 * N fibers queue behind one permit; each holds it across `work`. Counts the takes of Effect's semaphore
 * after the first one of each waiter: a waiter woken while another holds the permit takes again.
 */
const effectSemaphore = (waiters: number) =>
  Effect.gen(function* () {
    const semaphore = yield* Effect.makeSemaphore(1)
    const internals = semaphore as unknown as { take: (n: number) => Effect.Effect<number> }
    const take = internals.take
    let takes = 0
    internals.take = (n) => {
      takes += 1
      return take(n)
    }
    return yield* drain(waiters, semaphore.withPermits(1), () => takes)
  })

const ourPermits = (waiters: number) => {
  const permits = makePermits(1)
  // permits.ts hands a released permit to the next waiter only: no waiter takes twice
  return drain(waiters, permits.withPermit, () => 0)
}

const drain = (
  waiters: number,
  withPermit: <A, E>(effect: Effect.Effect<A, E>) => Effect.Effect<A, E>,
  takes: () => number
) =>
  Effect.gen(function* () {
    const gate = yield* Deferred.make<void>()
    const holder = yield* Effect.fork(withPermit(Deferred.await(gate)))
    const fibers = yield* Effect.forEach(
      Array.from({ length: waiters }, () => withPermit(work)),
      (e) => Effect.fork(e)
    )
    for (let i = 0; i < 10; i++) yield* Effect.yieldNow()
    const initial = takes()
    const started = performance.now()
    yield* Deferred.succeed(gate, undefined)
    yield* Fiber.join(holder)
    for (const fiber of fibers) yield* Fiber.join(fiber)
    return { retakes: takes() - initial, ms: performance.now() - started }
  })

/** The baseline of the grant locks: a Map of permits with reference counts, what RcMap replaced. */
const makeGrantLocksMap = () => {
  const grantLocks = new Map<string, { permits: Permits; users: number }>()
  return {
    held: Effect.sync(() => grantLocks.size),
    withLock: <A, E>(grantId: string, effect: Effect.Effect<A, E>): Effect.Effect<A, E> =>
      Effect.acquireUseRelease(
        Effect.sync(() => {
          let lock = grantLocks.get(grantId)
          if (lock === undefined) {
            lock = { permits: makePermits(1), users: 0 }
            grantLocks.set(grantId, lock)
          }
          lock.users += 1
          return lock
        }),
        (lock) => lock.permits.withPermit(effect),
        (lock) =>
          Effect.sync(() => {
            lock.users -= 1
            if (lock.users === 0) grantLocks.delete(grantId)
          })
      )
  }
}

const grantLocks = (calls: number, contenders: number, map = false) =>
  Effect.scoped(
    Effect.gen(function* () {
      const locks = map ? makeGrantLocksMap() : yield* makeGrantLocks
      let started = performance.now()
      for (let i = 0; i < calls; i++) yield* locks.withLock(`grant-${i}`, Effect.void)
      const uncontendedUs = ((performance.now() - started) * 1000) / calls
      const gate = yield* Deferred.make<void>()
      const holder = yield* Effect.fork(locks.withLock("one", Deferred.await(gate)))
      yield* Effect.yieldNow()
      const before = heap()
      const fibers = yield* Effect.forEach(
        Array.from({ length: contenders }, () => locks.withLock("one", Effect.void)),
        (e) => Effect.fork(e)
      )
      for (let i = 0; i < 10; i++) yield* Effect.yieldNow()
      const perWaiter = (heap() - before) / contenders
      started = performance.now()
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(holder)
      yield* Fiber.joinAll(fibers)
      const drainUs = ((performance.now() - started) * 1000) / contenders
      return { uncontendedUs, perWaiterBytes: Math.round(perWaiter), drainUs, left: yield* locks.held }
    })
  )

/** Effect's Cache: two callers share a lookup; the first is interrupted; what does the second get? */
const cacheInterruption = Effect.gen(function* () {
  const gate = yield* Deferred.make<string>()
  const started = yield* Deferred.make<void>()
  const cache = yield* Cache.make({
    capacity: 10,
    timeToLive: Duration.minutes(1),
    lookup: (_key: string) => Effect.zipRight(Deferred.succeed(started, undefined), Deferred.await(gate))
  })
  const first = yield* Effect.fork(cache.get("k"))
  yield* Deferred.await(started)
  const second = yield* Effect.fork(cache.get("k"))
  yield* Effect.yieldNow()
  yield* Fiber.interrupt(first)
  yield* Deferred.succeed(gate, "token")
  const exit = yield* Fiber.await(second)
  return Exit.isSuccess(exit) ? `second caller got ${exit.value}` : "second caller was interrupted too"
})

const program = Effect.gen(function* () {
  for (const n of [250, 500]) {
    const effect = yield* effectSemaphore(n)
    const ours = yield* ourPermits(n)
    console.log(
      `semaphore, ${n} waiters: Effect's takes again ${effect.retakes} times (${(effect.retakes / n).toFixed(0)} per release) and drains in ${effect.ms.toFixed(0)} ms; permits.ts: ${ours.retakes} times, ${ours.ms.toFixed(0)} ms`
    )
  }
  const old = yield* grantLocks(20_000, 10_000, true)
  console.log(
    `grant locks (Map): ${old.uncontendedUs.toFixed(1)} us per uncontended call, ${old.perWaiterBytes} bytes per waiting caller, ${old.drainUs.toFixed(1)} us per waiter to drain, ${old.left} entries left`
  )
  const locks = yield* grantLocks(20_000, 10_000)
  console.log(
    `grant locks (RcMap): ${locks.uncontendedUs.toFixed(1)} us per uncontended call, ${locks.perWaiterBytes} bytes per waiting caller, ${locks.drainUs.toFixed(1)} us per waiter to drain, ${locks.left} entries left`
  )
  console.log(`Effect's Cache, first caller interrupted: ${yield* cacheInterruption}`)
})

Effect.runPromise(program)
