import { Clock, Duration, Effect, Either, Random, type Redacted } from "effect"
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
    return Effect.gen(function* () {
      const deadline = (yield* Clock.currentTimeMillis) + settings.retryDeadlineMs
      for (let tries = 1; ; tries++) {
        const result = yield* Effect.either(attempt)
        if (Either.isRight(result)) return result.right
        const error = result.left
        if (!isRetryable(error) || tries >= settings.retryAttempts) return yield* Effect.fail(error)
        // Effect's Random, not Math.random: TestRandom drives the jitter in tests
        const backoff = settings.retryBaseDelayMs * 2 ** (tries - 1) * (0.5 + (yield* Random.next))
        const wait = Math.max(
          backoff,
          error.retryAfter === undefined ? 0 : Duration.toMillis(error.retryAfter)
        )
        if ((yield* Clock.currentTimeMillis) + wait > deadline) return yield* Effect.fail(error)
        yield* Effect.sleep(Duration.millis(wait))
      }
    })
  }
}
