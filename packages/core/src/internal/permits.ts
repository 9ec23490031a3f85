import { Deferred, Effect, Exit, FiberId } from "effect"

/**
 * A fair (first come, first served) counting semaphore that hands a released permit straight to the
 * next waiter. Effect's own semaphore wakes every waiter on each release and all but one go back to
 * sleep, which is O(waiters) work and garbage per release: with thousands of grants queued behind the
 * refresh cap (a refresh storm) that made the broker quadratic in time and memory.
 */
export interface Permits {
  readonly withPermit: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /** Waiters queued right now. */
  readonly waiting: () => number
}

export const makePermits = (permits: number): Permits => {
  let free = permits
  const queue: Array<Deferred.Deferred<void>> = []

  const release = () => {
    const next = queue.shift()
    if (next === undefined) free += 1
    else Deferred.unsafeDone(next, Exit.void)
  }

  const acquire = Effect.suspend(() => {
    if (free > 0) {
      free -= 1
      return Effect.void
    }
    const turn = Deferred.unsafeMake<void>(FiberId.none)
    queue.push(turn)
    return Deferred.await(turn).pipe(
      Effect.onInterrupt(() =>
        Effect.sync(() => {
          const at = queue.indexOf(turn)
          // Still queued: leave the queue. Already handed the permit: pass it on.
          if (at >= 0) queue.splice(at, 1)
          else release()
        })
      )
    )
  })

  return {
    waiting: () => queue.length,
    withPermit: (effect) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(restore(acquire), () => Effect.ensuring(restore(effect), Effect.sync(release)))
      )
  }
}
