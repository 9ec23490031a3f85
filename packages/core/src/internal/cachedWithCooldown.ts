import { Clock, Deferred, Duration, Effect, Exit, Ref } from "effect"

type State<A, E> =
  | { readonly _tag: "Empty" }
  | { readonly _tag: "Pending"; readonly deferred: Deferred.Deferred<A, E> }
  | { readonly _tag: "Ready"; readonly value: A }
  | { readonly _tag: "Failed"; readonly exit: Exit.Exit<A, E>; readonly retryAt: number }

/**
 * A lazily loaded value that is kept once loaded (discovery documents, JWKS locations): concurrent first
 * callers share one load; a failed load is remembered for `cooldown` (callers get the same failure without
 * a new request), then the next caller loads again. The load runs in its own fiber, so an interrupted
 * caller never strands the others; it must end by itself (every upstream request has a timeout).
 */
export const cachedWithCooldown = <A, E>(
  load: Effect.Effect<A, E>,
  cooldown: Duration.DurationInput
): Effect.Effect<Effect.Effect<A, E>> =>
  Effect.gen(function* () {
    const cooldownMillis = Duration.toMillis(Duration.decode(cooldown))
    const state = yield* Ref.make<State<A, E>>({ _tag: "Empty" })

    const settle = (deferred: Deferred.Deferred<A, E>) =>
      Effect.exit(load).pipe(
        Effect.flatMap((exit) =>
          Clock.currentTimeMillis.pipe(
            Effect.flatMap((now) =>
              Ref.set(
                state,
                Exit.isSuccess(exit)
                  ? { _tag: "Ready", value: exit.value }
                  : { _tag: "Failed", exit, retryAt: now + cooldownMillis }
              )
            ),
            Effect.zipRight(Deferred.done(deferred, exit))
          )
        )
      )

    return Effect.gen(function* () {
      const now = yield* Clock.currentTimeMillis
      const deferred = yield* Deferred.make<A, E>()
      const decision = yield* Ref.modify(
        state,
        (current): readonly [Effect.Effect<A, E> | "lead", State<A, E>] => {
          switch (current._tag) {
            case "Ready":
              return [Effect.succeed(current.value), current]
            case "Pending":
              return [Deferred.await(current.deferred), current]
            case "Failed":
              if (now < current.retryAt) return [current.exit, current]
              return ["lead", { _tag: "Pending", deferred }]
            case "Empty":
              return ["lead", { _tag: "Pending", deferred }]
          }
        }
      )
      if (decision !== "lead") return yield* decision
      yield* Effect.forkDaemon(settle(deferred))
      return yield* Deferred.await(deferred)
    })
  })
