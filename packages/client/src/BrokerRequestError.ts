import { Data, type Duration } from "effect"

/** The broker refused a request for a reason of its own (authentication, policy, rate limit, routing). */
export class BrokerRequestError extends Data.TaggedError("BrokerRequestError")<{
  readonly status: number
  /** The problem's `code` (`unauthorized`, `forbidden`, `rate_limited`, `grant_not_found`, ...) or OAuth `error`. */
  readonly code: string
  readonly message: string
  readonly reason?: string | undefined
  readonly retryAfter?: Duration.Duration | undefined
}> {}
