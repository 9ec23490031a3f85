import { Cause, Clock, Effect, Exit, Option } from "effect"

/**
 * A per-provider circuit: after `failureThreshold` consecutive transient failures it opens for
 * `openMs`; then one trial call is let through (half-open); its success closes the circuit, its failure
 * opens it again. A call that ends any other way (interrupted, or a defect) gives its trial slot back and
 * the circuit stays open for another `openMs`: no exit can leave the trial taken for ever.
 */
export interface CircuitBreaker {
  /**
   * Runs `call` when the circuit lets it through, else fails with `CircuitOpen` without running it.
   * `isTransient` says which failures count against the provider (the others are answers: they close it).
   * `onOpen` runs when this call's failure opened the circuit.
   */
  readonly guard: <A, E, R>(
    call: Effect.Effect<A, E, R>,
    isTransient: (error: E) => boolean,
    onOpen: Effect.Effect<void>
  ) => Effect.Effect<A, E | CircuitOpen, R>
  readonly state: Effect.Effect<"closed" | "open" | "half_open">
}

/** The circuit refused the call. */
export class CircuitOpen {
  readonly _tag = "CircuitOpen"
}

export const makeCircuitBreaker = (failureThreshold: number, openMs: number): CircuitBreaker => {
  let failures = 0
  let openedAt: number | null = null
  let trialInFlight = false

  const pass = (now: number): "closed" | "trial" | "refused" => {
    if (openedAt === null) return "closed"
    if (now - openedAt < openMs || trialInFlight) return "refused"
    trialInFlight = true
    return "trial"
  }
  const settle = <A, E>(
    taken: "closed" | "trial",
    exit: Exit.Exit<A, E>,
    isTransient: (error: E) => boolean,
    now: number
  ): boolean => {
    if (taken === "trial") trialInFlight = false
    if (Exit.isSuccess(exit)) {
      failures = 0
      openedAt = null
      return false
    }
    const failed = Cause.failureOption(exit.cause)
    if (Option.isNone(failed)) {
      // Interrupted or a defect: no verdict on the provider; a trial re-opens the pause.
      if (taken === "trial") openedAt = now
      return false
    }
    if (!isTransient(failed.value)) {
      failures = 0
      openedAt = null
      return false
    }
    failures += 1
    const wasOpen = openedAt !== null
    if (taken === "trial" || failures >= failureThreshold) {
      openedAt = now
      return !wasOpen
    }
    return false
  }

  return {
    guard: <A, E, R>(
      call: Effect.Effect<A, E, R>,
      isTransient: (error: E) => boolean,
      onOpen: Effect.Effect<void>
    ) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(Clock.currentTimeMillis, (now): Effect.Effect<A, E | CircuitOpen, R> => {
          const taken = pass(now)
          if (taken === "refused") return Effect.fail(new CircuitOpen())
          return restore(call).pipe(
            Effect.onExit((exit) =>
              Effect.flatMap(Clock.currentTimeMillis, (ended) =>
                settle(taken, exit, isTransient, ended) ? onOpen : Effect.void
              )
            )
          )
        })
      ),
    state: Effect.map(Clock.currentTimeMillis, (now) =>
      openedAt === null ? "closed" : now - openedAt < openMs ? "open" : "half_open"
    )
  }
}
