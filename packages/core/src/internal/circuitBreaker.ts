import { Clock, Effect } from "effect"

/**
 * A per-provider circuit: after `failureThreshold` consecutive transient failures it opens for
 * `openMs`; then one trial call is let through (half-open); its success closes the circuit, its failure
 * opens it again.
 */
export interface CircuitBreaker {
  /** True when a call may go upstream now (closed, or the half-open trial slot was taken). */
  readonly tryPass: Effect.Effect<boolean>
  readonly onSuccess: Effect.Effect<void>
  /** Returns true when this failure opened the circuit. */
  readonly onFailure: Effect.Effect<boolean>
  readonly state: Effect.Effect<"closed" | "open" | "half_open">
}

export const makeCircuitBreaker = (failureThreshold: number, openMs: number): CircuitBreaker => {
  let failures = 0
  let openedAt: number | null = null
  let trialInFlight = false
  return {
    tryPass: Effect.map(Clock.currentTimeMillis, (now) => {
      if (openedAt === null) return true
      if (now - openedAt < openMs || trialInFlight) return false
      trialInFlight = true
      return true
    }),
    onSuccess: Effect.sync(() => {
      failures = 0
      openedAt = null
      trialInFlight = false
    }),
    onFailure: Effect.map(Clock.currentTimeMillis, (now) => {
      failures += 1
      const wasOpen = openedAt !== null
      if (trialInFlight || failures >= failureThreshold) {
        trialInFlight = false
        openedAt = now
        return !wasOpen
      }
      return false
    }),
    state: Effect.map(Clock.currentTimeMillis, (now) =>
      openedAt === null ? "closed" : now - openedAt < openMs ? "open" : "half_open"
    )
  }
}
