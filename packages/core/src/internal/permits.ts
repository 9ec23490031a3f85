import { Deferred, Effect, Exit, FiberId } from "effect"

/**
 * Kept instead of Effect's semaphore, which wakes every waiter on each release (all but one take again
 * and go back to sleep): measured with effect 3.22.4 (`node --expose-gc --import tsx bench/primitives.ts`),
 * 500 fibers queued on `Effect.makeSemaphore(1)`, each holding the permit across one event-loop turn,
 * take again 124,750 times (250 per release) and drain in about 7 s; on this one, 0 times in about 0.2 s.
 * Quadratic in the waiters: with thousands of grants queued behind the refresh cap (a refresh storm)
 * that made the broker quadratic in time and memory.
 *
 * A fair (first come, first served) counting semaphore that hands a released permit straight to the
 * next waiter.
 *
 * Waiters are data: a callback each in one queue. `admit` queues work that has no fiber yet (the
 * single flight forks a grant's refresh only once admitted), so a storm's queued grants cost a queue
 * slot, not a parked fiber tree each.
 */
export interface Permits {
  readonly withPermit: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /** Calls `start` with a permit, now or when one is free; whoever `start` hands it to must `release` it. */
  readonly admit: (start: () => void) => void
  /** Gives back a permit taken by `admit`. */
  readonly release: () => void
  /** Waiters queued right now. */
  readonly waiting: () => number
}

export const makePermits = (permits: number): Permits => {
  let free = permits
  const queue: Array<() => void> = []

  const release = () => {
    const next = queue.shift()
    if (next === undefined) free += 1
    else next()
  }

  const admit = (start: () => void) => {
    if (free > 0) {
      free -= 1
      start()
    } else queue.push(start)
  }

  const acquire = Effect.suspend(() => {
    if (free > 0) {
      free -= 1
      return Effect.void
    }
    const turn = Deferred.unsafeMake<void>(FiberId.none)
    const wake = () => Deferred.unsafeDone(turn, Exit.void)
    queue.push(wake)
    return Deferred.await(turn).pipe(
      Effect.onInterrupt(() =>
        Effect.sync(() => {
          const at = queue.indexOf(wake)
          // Still queued: leave the queue. Already handed the permit: pass it on.
          if (at >= 0) queue.splice(at, 1)
          else release()
        })
      )
    )
  })

  return {
    waiting: () => queue.length,
    admit,
    release,
    withPermit: (effect) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(restore(acquire), () => Effect.ensuring(restore(effect), Effect.sync(release)))
      )
  }
}
