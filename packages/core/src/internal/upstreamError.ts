import { Clock, Duration, Effect } from "effect"
import * as client from "openid-client"
import { InvalidGrant, type RefusalWithoutError } from "../AuthorizationServer.js"
import { UpstreamRejected, UpstreamUnavailable } from "../Errors.js"

/**
 * Maps what openid-client throws to the typed errors of core. openid-client surfaces:
 * - an OAuth error body (4xx, JSON, `error`) as `ResponseBodyError` (`error`, `error_description`, `status`);
 * - a `WWW-Authenticate` challenge (e.g. 401 `invalid_client`) as `WWWAuthenticateChallengeError`;
 * - an error in the authorization response (callback) as `AuthorizationResponseError`;
 * - any other unexpected status (every 5xx, a non-JSON 4xx) as `ClientError` whose `cause` is the Response;
 * - a timeout as `ClientError` `OAUTH_TIMEOUT`, an aborted request as `OAUTH_ABORT`;
 * - a refused connection as the raw `TypeError: fetch failed`.
 * Messages name the provider, status and OAuth error only: never a token, a secret or a response body.
 */
export type MappedError = InvalidGrant | UpstreamUnavailable | UpstreamRejected

export const mapUpstreamError = (provider: string, operation: string, cause: unknown) =>
  Effect.flatMap(Clock.currentTimeMillis, (now) => {
    const error = classify(provider, operation, cause, now)
    return error === undefined ? Effect.die(cause) : Effect.fail(error)
  })

const responseOf = (cause: unknown): Response | undefined => {
  if (cause instanceof client.ResponseBodyError || cause instanceof client.WWWAuthenticateChallengeError) {
    return cause.response
  }
  if (cause instanceof client.ClientError && cause.cause instanceof Response) return cause.cause
  return undefined
}

const classify = (
  provider: string,
  operation: string,
  cause: unknown,
  now: number
): MappedError | undefined => {
  const response = responseOf(cause)
  if (response !== undefined && response.status >= 500) {
    // A 503 with Retry-After says "not processed, come back later"; other 5xx prove nothing.
    const retryAfter = parseRetryAfter(response.headers.get("retry-after"), now)
    return new UpstreamUnavailable({
      provider,
      reason: "server_error",
      status: response.status,
      retryAfter,
      message: `${operation} at provider "${provider}" failed: HTTP ${response.status}`
    })
  }
  if (response !== undefined && response.status === 429) {
    const retryAfter = parseRetryAfter(response.headers.get("retry-after"), now)
    return new UpstreamUnavailable({
      provider,
      reason: "rate_limited",
      status: 429,
      retryAfter,
      message: `${operation} at provider "${provider}" was rate limited (HTTP 429${
        retryAfter === undefined ? "" : `, retry after ${Duration.format(retryAfter)}`
      })`
    })
  }
  if (cause instanceof client.ResponseBodyError) {
    if (cause.error === "invalid_grant") return new InvalidGrant(provider, cause.error_description)
    return rejected(provider, operation, cause.error, cause.error_description, cause.status)
  }
  if (cause instanceof client.WWWAuthenticateChallengeError) {
    const challenge = cause.cause[0]
    const error = challenge?.parameters.error ?? "invalid_client"
    if (error === "invalid_grant") return new InvalidGrant(provider, challenge?.parameters.error_description)
    return rejected(provider, operation, error, challenge?.parameters.error_description, cause.status)
  }
  if (cause instanceof client.AuthorizationResponseError) {
    return rejected(provider, operation, cause.error, cause.error_description, undefined)
  }
  if (cause instanceof client.ClientError || isOAuthProcessingError(cause)) {
    const code = (cause as { readonly code?: string }).code
    switch (code) {
      case "OAUTH_TIMEOUT":
      case "OAUTH_ABORT":
        return unavailable(provider, operation, "timeout", "timed out")
      case "OAUTH_HTTP_REQUEST_FORBIDDEN":
      case "OAUTH_REQUEST_PROTOCOL_FORBIDDEN":
        return rejected(
          provider,
          operation,
          "insecure_request",
          "an endpoint is not https:// (allowInsecureRequests is off)",
          undefined
        )
    }
    if (response !== undefined) {
      return rejected(
        provider,
        operation,
        "unexpected_response",
        `unexpected HTTP ${response.status}`,
        response.status
      )
    }
    if (code === undefined && isNetworkError(cause.cause)) {
      return unavailable(provider, operation, "network", "could not be reached")
    }
    return rejected(provider, operation, stableCode(cause), `${code ?? "error"}: ${cause.message}`, undefined)
  }
  if (isNetworkError(cause)) return unavailable(provider, operation, "network", "could not be reached")
  if (cause instanceof DOMException && cause.name === "TimeoutError") {
    return unavailable(provider, operation, "timeout", "timed out")
  }
  return undefined
}

/** `TypeError: fetch failed` (refused, reset, DNS) and undici's `TypeError: terminated`; never a coded argument error. */
const isNetworkError = (cause: unknown): boolean =>
  cause instanceof TypeError && (cause as { code?: unknown }).code === undefined

/** oauth4webapi's own errors (e.g. from `buildAuthorizationUrl`, which does not wrap them): `OAUTH_*` codes. */
const isOAuthProcessingError = (cause: unknown): cause is Error =>
  cause instanceof Error &&
  typeof (cause as { code?: unknown }).code === "string" &&
  String((cause as { code?: unknown }).code).startsWith("OAUTH_")

const stableCode = (cause: Error): string => {
  const inner = cause.cause
  if (inner instanceof Error && /"state"/.test(inner.message)) return "state_mismatch"
  return "invalid_response"
}

const rejected = (
  provider: string,
  operation: string,
  error: string,
  errorDescription: string | undefined,
  status: number | undefined
) =>
  new UpstreamRejected({
    provider,
    error,
    errorDescription,
    status,
    message: `${operation} at provider "${provider}" was rejected: ${error}${
      errorDescription === undefined ? "" : ` (${errorDescription})`
    }${status === undefined ? "" : ` [HTTP ${status}]`}`
  })

const unavailable = (provider: string, operation: string, reason: "network" | "timeout", what: string) =>
  new UpstreamUnavailable({
    provider,
    reason,
    message: `${operation} at provider "${provider}" ${what}`
  })

/** RFC 9110 Retry-After: delay-seconds or an HTTP-date (relative to `now`). */
export const parseRetryAfter = (header: string | null, now: number): Duration.Duration | undefined => {
  if (header === null) return undefined
  const value = header.trim()
  if (/^\d+$/.test(value)) return Duration.seconds(Number.parseInt(value, 10))
  const date = Date.parse(value)
  if (Number.isNaN(date)) return undefined
  return Duration.millis(Math.max(0, date - now))
}

/** How much of a refusal's body the log shows. */
const REFUSAL_PREVIEW = 80

/**
 * A refresh answered 400 or 401 without an OAuth error body: the provider refused the refresh token
 * (F23). Only such a status with no `error` the client library could read is one; a 5xx, a 429 and an
 * OAuth error keep their own meaning.
 */
export const isRefusalWithoutError = (status: number, error: MappedError): boolean =>
  (status === 400 || status === 401) &&
  error._tag === "UpstreamRejected" &&
  error.error === "unexpected_response"

/**
 * What came back, fit for a log line: the status, the content type and the body's first bytes, with
 * every run that could be a token or a key (16 or more characters of a token alphabet) replaced.
 */
export const describeRefusal = async (response: Response): Promise<RefusalWithoutError> => {
  const text = await response.text().catch(() => "")
  const preview = text
    .slice(0, REFUSAL_PREVIEW * 4)
    .replace(/[A-Za-z0-9+/=_.~-]{16,}/g, "[redacted]")
    .replace(/\s+/g, " ")
    .slice(0, REFUSAL_PREVIEW)
  return {
    status: response.status,
    contentType: response.headers.get("content-type") ?? "none",
    body: preview
  }
}
