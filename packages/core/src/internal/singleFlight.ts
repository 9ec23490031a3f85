import { Deferred, Effect, FiberId, type Scope } from "effect"

/**
 * In-process single-flight: concurrent callers with the same key share one run of the effect. The run
 * is forked into the broker's scope, so a caller that gives up (interruption, timeout) does not cancel
 * it for the others; it ends when the broker's scope closes.
 */
export interface SingleFlight {
  readonly run: <A, E>(
    key: string,
    effect: Effect.Effect<A, E>,
    onJoin: Effect.Effect<void>
  ) => Effect.Effect<A, E>
  readonly inFlight: () => number
}

export const makeSingleFlight = (scope: Scope.Scope): SingleFlight => {
  const flights = new Map<string, Deferred.Deferred<unknown, unknown>>()
  return {
    inFlight: () => flights.size,
    run: <A, E>(key: string, effect: Effect.Effect<A, E>, onJoin: Effect.Effect<void>) =>
      Effect.suspend(() => {
        const existing = flights.get(key) as Deferred.Deferred<A, E> | undefined
        if (existing !== undefined) return Effect.zipRight(onJoin, Deferred.await(existing))
        const deferred = Deferred.unsafeMake<A, E>(FiberId.none)
        flights.set(key, deferred as Deferred.Deferred<unknown, unknown>)
        const shared = effect.pipe(
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
        return Effect.forkIn(Effect.interruptible(shared), scope).pipe(
          Effect.zipRight(Deferred.await(deferred))
        )
      })
  }
}
