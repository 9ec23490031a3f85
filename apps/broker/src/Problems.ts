import type { TokenBrokerError } from "@token-broker/core"
import { Duration } from "effect"

/**
 * One place maps every core error to one HTTP status and an RFC 9457 problem (outside the OAuth
 * endpoint), and to an RFC 6749 error (at `/oauth/token`). Messages come from core's errors, which never
 * carry a token, key or secret.
 */
export interface Problem {
  readonly status: number
  /** Stable, machine-readable: core's error `code`, or one of this app's (`unauthorized`, `forbidden`, ...). */
  readonly code: string
  readonly title: string
  readonly detail: string
  readonly extensions?: Readonly<Record<string, unknown>> | undefined
  readonly headers?: Readonly<Record<string, string>> | undefined
}

/** A problem raised by the HTTP layer itself (authentication, policy, validation, routing). */
export class HttpProblem extends Error {
  constructor(readonly problem: Problem) {
    super(problem.detail)
  }
}

/** An RFC 6749 / 8693 error at the token endpoint. */
export interface OAuthError {
  readonly status: number
  readonly error: string
  readonly description: string
  readonly headers?: Readonly<Record<string, string>> | undefined
}

export class HttpOAuthError extends Error {
  constructor(readonly oauth: OAuthError) {
    super(oauth.description)
  }
}

export const PROBLEM_TYPE_PREFIX = "urn:token-broker:problem:"

/** Status and title of every core error code: the table the API documentation shows. */
export const ERROR_STATUS: Readonly<Record<TokenBrokerError["_tag"], { status: number; title: string }>> = {
  ConsentRequired: { status: 409, title: "Consent required" },
  UpstreamUnavailable: { status: 503, title: "Upstream unavailable" },
  UpstreamRejected: { status: 502, title: "Upstream rejected the request" },
  InvalidSubjectToken: { status: 400, title: "Invalid subject token" },
  AudienceMismatch: { status: 400, title: "Audience mismatch" },
  ProviderNotFound: { status: 404, title: "Provider not found" },
  AuthorizationNotPending: { status: 400, title: "Authorization not pending" },
  IdentityMismatch: { status: 403, title: "Identity mismatch" },
  StorageUnavailable: { status: 503, title: "Storage unavailable" },
  DecryptionFailed: { status: 500, title: "Decryption failed" },
  ConfigInvalid: { status: 500, title: "Configuration invalid" },
  InvalidRequest: { status: 400, title: "Invalid request" }
}

const retryAfterSeconds = (retryAfter: Duration.Duration | undefined, fallback: number) =>
  retryAfter === undefined ? fallback : Math.max(1, Math.ceil(Duration.toSeconds(retryAfter)))

/** The problem of a core error. */
export const problemOf = (error: TokenBrokerError): Problem => {
  const { status, title } = ERROR_STATUS[error._tag]
  const base = { status, code: error.code, title, detail: error.message }
  switch (error._tag) {
    case "ConsentRequired":
      return {
        ...base,
        extensions: {
          subject: error.subject,
          provider: error.provider,
          reason: error.reason,
          authorize: {
            method: "POST",
            href: `/v1/grants/${encodeURIComponent(error.subject)}/${encodeURIComponent(error.provider)}/authorize`
          }
        }
      }
    case "UpstreamUnavailable": {
      const retryAfter = retryAfterSeconds(error.retryAfter, 1)
      return {
        ...base,
        extensions: { provider: error.provider, reason: error.reason, retryAfter },
        headers: { "retry-after": String(retryAfter) }
      }
    }
    case "UpstreamRejected":
      return {
        ...base,
        extensions: {
          provider: error.provider,
          error: error.error,
          ...(error.errorDescription === undefined ? {} : { errorDescription: error.errorDescription })
        }
      }
    case "InvalidSubjectToken":
      return { ...base, extensions: { reason: error.reason } }
    case "ProviderNotFound":
      return { ...base, extensions: { provider: error.provider } }
    case "IdentityMismatch":
      return {
        ...base,
        extensions: { subject: error.subject, provider: error.provider, consented: error.consented }
      }
    case "StorageUnavailable":
      return {
        ...base,
        detail: "The grant store is unavailable; try again shortly",
        headers: { "retry-after": "1" }
      }
    case "DecryptionFailed":
      return {
        ...base,
        extensions: { reason: error.reason, ...(error.kid === undefined ? {} : { kid: error.kid }) }
      }
    case "InvalidRequest":
    case "ConfigInvalid":
      return { ...base, extensions: { field: error.field } }
    default:
      return base
  }
}

/** The RFC 6749 error of a core error raised during token exchange. */
export const oauthErrorOf = (error: TokenBrokerError): OAuthError => {
  switch (error._tag) {
    case "InvalidSubjectToken":
    case "AudienceMismatch":
      // RFC 8693 section 2.2.2: an invalid or unacceptable subject_token is invalid_request
      return { status: 400, error: "invalid_request", description: `subject_token: ${error.message}` }
    case "ProviderNotFound":
      return { status: 400, error: "invalid_target", description: error.message }
    case "InvalidRequest":
      return {
        status: 400,
        error: error.field === "scopes" ? "invalid_scope" : "invalid_request",
        description: error.message
      }
    case "UpstreamUnavailable": {
      const retryAfter = retryAfterSeconds(error.retryAfter, 1)
      return {
        status: 503,
        error: "temporarily_unavailable",
        description: error.message,
        headers: { "retry-after": String(retryAfter) }
      }
    }
    case "UpstreamRejected":
      if (error.error === "unsupported_grant_type") {
        // the provider named by audience/resource cannot do RFC 8693: that target is not one this
        // token endpoint can issue for (RFC 8693 section 2.2.2); this broker does support the grant
        return { status: 400, error: "invalid_target", description: error.message }
      }
      return error.error === "invalid_scope" || error.error === "invalid_target"
        ? { status: 400, error: error.error, description: error.errorDescription ?? error.message }
        : { status: 502, error: "server_error", description: error.message }
    default: {
      const problem = problemOf(error)
      return {
        status: problem.status >= 500 ? problem.status : 400,
        error: problem.status >= 500 ? "server_error" : "invalid_request",
        description: problem.detail
      }
    }
  }
}

/** The problem+json body. */
export const problemBody = (problem: Problem, instance: string, requestId: string) => ({
  type: `${PROBLEM_TYPE_PREFIX}${problem.code}`,
  title: problem.title,
  status: problem.status,
  detail: problem.detail,
  code: problem.code,
  instance,
  requestId,
  ...problem.extensions
})

export const httpProblem = (
  status: number,
  code: string,
  title: string,
  detail: string,
  extras: Pick<Problem, "extensions" | "headers"> = {}
) => new HttpProblem({ status, code, title, detail, ...extras })

export const unauthorized = (detail: string) =>
  httpProblem(401, "unauthorized", "Unauthorized", detail, {
    headers: { "www-authenticate": 'Basic realm="token-broker", charset="UTF-8"' }
  })

export const forbidden = (detail: string, extensions?: Readonly<Record<string, unknown>>) =>
  httpProblem(403, "forbidden", "Forbidden", detail, { extensions })

export const invalidRequest = (field: string, detail: string) =>
  httpProblem(400, "invalid_request", "Invalid request", detail, { extensions: { field } })
