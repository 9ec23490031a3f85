import { Deferred, Effect, FiberId, Runtime, type Scope } from "effect"
import type { Permits } from "./permits.js"

/**
 * Kept instead of Effect's `Cache`, whose shared lookup runs in the fiber of its first caller: interrupt
 * that caller (a timeout, a closed request) and every other caller waiting on the same key is
 * interrupted too (checked with effect 3.22.4 in `bench/primitives.ts`: "second caller was interrupted
 * too"). A refresh must not be lost to one impatient caller, and a `Cache` would also keep results, which
 * the AccessTokenCache does with its own expiry.
 *
 * In-process single-flight: concurrent callers with the same key share one run of the effect. The run
 * is forked into the broker's scope, so a caller that gives up (interruption, timeout) does not cancel
 * it for the others; it ends when the broker's scope closes.
 *
 * With `admission` (the provider's refresh cap), the run is forked only once admitted, and holds the
 * permit until it ends: until then the flight is a Deferred and a queued callback, and its callers are
 * fibers parked on that Deferred - no fiber tree per queued grant (a storm's memory stays per caller).
 */
export interface SingleFlight {
  readonly run: <A, E>(
    key: string,
    effect: Effect.Effect<A, E>,
    onJoin: Effect.Effect<void>,
    admission?: Permits
  ) => Effect.Effect<A, E>
  readonly inFlight: () => number
}

export const makeSingleFlight = (scope: Scope.Scope): SingleFlight => {
  const flights = new Map<string, Deferred.Deferred<unknown, unknown>>()
  return {
    inFlight: () => flights.size,
    run: <A, E>(key: string, effect: Effect.Effect<A, E>, onJoin: Effect.Effect<void>, admission?: Permits) =>
      Effect.suspend(() => {
        const existing = flights.get(key) as Deferred.Deferred<A, E> | undefined
        if (existing !== undefined) return Effect.zipRight(onJoin, Deferred.await(existing))
        const deferred = Deferred.unsafeMake<A, E>(FiberId.none)
        flights.set(key, deferred as Deferred.Deferred<unknown, unknown>)
        const shared = () =>
          effect.pipe(
            Effect.exit,
            Effect.flatMap((exit) =>
              Effect.sync(() => {
                flights.delete(key)
              }).pipe(Effect.zipRight(Deferred.done(deferred, exit)))
            ),
            Effect.onInterrupt(() =>
              Effect.sync(() => {
                flights.delete(key)
              }).pipe(Effect.zipRight(Deferred.interrupt(deferred)))
            )
          )
        // Interruptible whatever region the first caller is in (a fork inherits its parent's flags).
        if (admission === undefined) {
          return Effect.forkIn(Effect.interruptible(shared()), scope).pipe(
            Effect.zipRight(Deferred.await(deferred))
          )
        }
        // Queued: only what the run needs later is kept (the effect, the key, the Deferred, the first
        // caller's runtime); the run's own effects are built once it is admitted.
        return Effect.withFiberRuntime<A, E>((caller) => {
          admission.admit(() => {
            // Forked from outside any fiber (a released permit calls this), with the first caller's
            // context and fiber refs as a fork would have: into the broker's scope, so closing the
            // broker interrupts it as it does an unadmitted flight.
            const runtime = Runtime.make({
              context: caller.currentContext,
              fiberRefs: caller.getFiberRefs(),
              runtimeFlags: Runtime.defaultRuntime.runtimeFlags
            })
            Runtime.runFork(runtime)(
              Effect.forkIn(
                Effect.interruptible(shared()).pipe(Effect.ensuring(Effect.sync(admission.release))),
                scope
              )
            )
          })
          return Deferred.await(deferred)
        })
      })
  }
}
