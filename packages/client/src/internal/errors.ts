import * as Core from "@token-broker/core"
import { Duration } from "effect"
import type { BrokerRequestError } from "../BrokerRequestError.js"

type Body = Readonly<Record<string, unknown>>

/** The first of `keys` whose value in the answer's body is a string. */
export const firstString = (body: Body, ...keys: ReadonlyArray<string>): string | undefined => {
  for (const key of keys) {
    const value = body[key]
    if (typeof value === "string") return value
  }
  return undefined
}

const str = (body: Body, key: string, fallback = ""): string => firstString(body, key) ?? fallback

/** Where a request was going, to fill errors the answer does not describe fully. */
export interface ErrorContext {
  readonly subject?: string | undefined
  readonly provider?: string | undefined
}

/** A problem+json answer with what every error takes from it already read. */
interface Problem {
  readonly body: Body
  readonly context: ErrorContext
  readonly message: string
  readonly provider: string
}

/**
 * One decoder a core error `code`, back into core's class. Keyed by every `ErrorCode`: an error core
 * adds does not compile here until the client decodes it.
 */
const decoders: {
  readonly [C in Core.ErrorCode]: (problem: Problem) => Extract<Core.TokenBrokerError, { readonly code: C }>
} = {
  consent_required: ({ body, context, message, provider }) =>
    new Core.ConsentRequired({
      subject: str(body, "subject", context.subject ?? ""),
      provider,
      reason: str(body, "reason", "no_grant") as Core.ConsentRequiredReason,
      message
    }),
  upstream_unavailable: ({ body, message, provider }) =>
    new Core.UpstreamUnavailable({
      provider,
      reason: str(body, "reason", "server_error") as Core.UpstreamUnavailable["reason"],
      retryAfter: typeof body.retryAfter === "number" ? Duration.seconds(body.retryAfter) : undefined,
      message
    }),
  upstream_rejected: ({ body, message, provider }) =>
    new Core.UpstreamRejected({
      provider,
      error: str(body, "error", "upstream_rejected"),
      errorDescription: firstString(body, "errorDescription"),
      message
    }),
  invalid_subject_token: ({ body, message }) =>
    new Core.InvalidSubjectToken({
      reason: str(body, "reason", "malformed") as Core.InvalidSubjectToken["reason"],
      message
    }),
  audience_mismatch: ({ message }) => new Core.AudienceMismatch({ expected: [], actual: [], message }),
  provider_not_found: ({ message, provider }) => new Core.ProviderNotFound({ provider, message }),
  authorization_not_pending: ({ message }) => new Core.AuthorizationNotPending({ message }),
  identity_mismatch: ({ body, context, message, provider }) =>
    new Core.IdentityMismatch({
      subject: str(body, "subject", context.subject ?? ""),
      provider,
      consented: str(body, "consented"),
      message
    }),
  storage_unavailable: ({ message }) => new Core.StorageUnavailable({ operation: "remote", message }),
  decryption_failed: ({ body, message }) =>
    new Core.DecryptionFailed({
      reason: str(body, "reason", "backend") as Core.DecryptionFailed["reason"],
      kid: firstString(body, "kid"),
      message
    }),
  invalid_request: ({ body, message }) =>
    new Core.InvalidRequest({ field: str(body, "field", "request"), message }),
  config_invalid: ({ body, message }) =>
    new Core.ConfigInvalid({ field: str(body, "field", "(broker)"), message })
}

const isCoreCode = (code: unknown): code is Core.ErrorCode =>
  typeof code === "string" && Object.hasOwn(decoders, code)

/** A problem+json answer of the broker back into core's typed error, by `code`; undefined when it is not one. */
export const coreErrorOf = (body: Body, context: ErrorContext): Core.TokenBrokerError | undefined =>
  isCoreCode(body.code)
    ? decoders[body.code]({
        body,
        context,
        message: str(body, "detail", "the broker refused the request"),
        provider: str(body, "provider", context.provider ?? "")
      })
    : undefined

/** The broker's own refusals (authentication, policy, rate limit) for a TokenSource: a configuration problem. */
export const asUpstreamRejected = (
  error: BrokerRequestError,
  provider: string
): Core.UpstreamRejected | Core.UpstreamUnavailable =>
  error.status === 429 || error.status >= 500
    ? new Core.UpstreamUnavailable({
        provider,
        reason: error.status === 429 ? "rate_limited" : "server_error",
        status: error.status,
        retryAfter: error.retryAfter,
        message: `The token broker answered ${error.status}: ${error.message}`
      })
    : new Core.UpstreamRejected({
        provider,
        error: error.status === 401 ? "invalid_client" : error.status === 403 ? "access_denied" : error.code,
        status: error.status,
        message: `The token broker refused the request (${error.status} ${error.code}): ${error.message}`
      })
