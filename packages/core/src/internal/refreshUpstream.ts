import { Clock, Duration, Effect, type Redacted, Schedule } from "effect"
import type {
  InvalidGrant,
  ProviderClient,
  TokenSet,
  UnreadableAnswer,
  UpstreamError
} from "../AuthorizationServer.js"
import { UpstreamUnavailable } from "../Errors.js"
import * as Metrics from "../Metrics.js"
import { type CircuitBreaker, makeCircuitBreaker } from "./circuitBreaker.js"
import { count, observe } from "./metrics.js"

export type RefreshFailure = InvalidGrant | UnreadableAnswer | UpstreamError

export interface RefreshUpstreamSettings {
  readonly retryAttempts: number
  readonly retryBaseDelayMs: number
  readonly retryDeadlineMs: number
  readonly circuitFailureThreshold: number
  readonly circuitOpenMs: number
}

/**
 * Answers that prove the provider did not process the refresh: only these are retried with the same
 * refresh token. A 429, or a 503 that says when to come back. Every other failure (another 5xx, a
 * timeout, a dropped connection, an unreadable 2xx) may follow a committed rotation, and on a provider
 * that detects reuse a retry with the consumed token would revoke the whole grant.
 */
export const isNotProcessed = (error: RefreshFailure): boolean => {
  switch (error._tag) {
    case "UpstreamRejected":
      // A refusal the provider answered (4xx): nothing rotated.
      return true
    case "UpstreamUnavailable":
      return (
        error.reason === "rate_limited" ||
        error.reason === "circuit_open" ||
        error.reason === "lease_timeout" ||
        (error.reason === "server_error" && error.status === 503 && error.retryAfter !== undefined)
      )
    default:
      return false
  }
}

const isRetryable = (error: RefreshFailure): error is UpstreamUnavailable =>
  error._tag === "UpstreamUnavailable" && error.reason !== "circuit_open" && isNotProcessed(error)

/** The refresh request at a provider: per-provider circuits, retries of answers that prove nothing was processed. */
export const makeRefreshUpstream = (settings: RefreshUpstreamSettings) => {
  const circuits = new Map<string, CircuitBreaker>()
  const circuitOf = (provider: string) => {
    let circuit = circuits.get(provider)
    if (circuit === undefined) {
      circuit = makeCircuitBreaker(settings.circuitFailureThreshold, settings.circuitOpenMs)
      circuits.set(provider, circuit)
    }
    return circuit
  }

  return (
    client: ProviderClient,
    refreshToken: Redacted.Redacted<string>,
    scopes: ReadonlyArray<string> | null
  ): Effect.Effect<TokenSet, RefreshFailure> => {
    const provider = client.config.id
    const circuit = circuitOf(provider)
    const request = Effect.gen(function* () {
      const started = yield* Clock.currentTimeMillis
      // Once sent, a request is never interrupted: its answer may carry the only copy of the successor.
      const result = yield* client
        .refresh({ refreshToken, scopes: scopes ?? undefined, resource: client.config.resource })
        .pipe(Effect.uninterruptible, Effect.either)
      const ended = yield* Clock.currentTimeMillis
      yield* observe(Metrics.refreshDuration, { provider }, (ended - started) / 1000)
      return yield* result
    })
    const attempt = circuit
      .guard(
        request,
        (error) => error._tag === "UpstreamUnavailable",
        count(Metrics.circuitOpen, { provider })
      )
      .pipe(
        Effect.catchTag("CircuitOpen", () =>
          Effect.fail(
            new UpstreamUnavailable({
              provider,
              reason: "circuit_open",
              message: `Provider "${provider}" failed repeatedly; calls pause until its circuit closes`
            })
          )
        )
      )
    return Effect.flatMap(Clock.currentTimeMillis, (started) =>
      Effect.retry(attempt, {
        schedule: retrySchedule(settings, started + settings.retryDeadlineMs),
        while: isRetryable
      })
    )
  }
}

/**
 * The waits between attempts: `retryBaseDelayMs` x 2^n, jittered by 0.5 + a random number in [0, 1)
 * (Effect's Random, so tests can fix it), never shorter than the provider's Retry-After; at most
 * `retryAttempts` attempts in all, and none whose wait would end after `deadline` (epoch ms).
 */
const retrySchedule = (settings: RefreshUpstreamSettings, deadline: number) =>
  Schedule.exponential(Duration.millis(settings.retryBaseDelayMs)).pipe(
    Schedule.jitteredWith({ min: 0.5, max: 1.5 }),
    Schedule.intersect(Schedule.recurs(settings.retryAttempts - 1)),
    Schedule.zipRight(Schedule.identity<RefreshFailure>()),
    Schedule.modifyDelay((error, delay) =>
      error._tag === "UpstreamUnavailable" && error.retryAfter !== undefined
        ? Duration.max(delay, error.retryAfter)
        : delay
    ),
    Schedule.delays,
    Schedule.checkEffect((_, wait) =>
      Effect.map(Clock.currentTimeMillis, (now) => now + Duration.toMillis(wait) <= deadline)
    )
  )
