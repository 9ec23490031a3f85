import {
  AudienceMismatch,
  AuthorizationNotPending,
  ConfigInvalid,
  ConsentRequired,
  type ConsentRequiredReason,
  DecryptionFailed,
  IdentityMismatch,
  InvalidRequest,
  InvalidSubjectToken,
  ProviderNotFound,
  StorageUnavailable,
  type TokenBrokerError,
  UpstreamRejected,
  UpstreamUnavailable
} from "@token-broker/core"
import { Duration } from "effect"
import type { BrokerRequestError } from "../BrokerRequestError.js"

type Body = Readonly<Record<string, unknown>>

const str = (body: Body, key: string, fallback = ""): string => {
  const value = body[key]
  return typeof value === "string" ? value : fallback
}

/** Where a request was going, to fill errors the answer does not describe fully. */
export interface ErrorContext {
  readonly subject?: string | undefined
  readonly provider?: string | undefined
}

/** A problem+json answer of the broker back into core's typed error, by `code`; undefined when it is not one. */
export const coreErrorOf = (body: Body, context: ErrorContext): TokenBrokerError | undefined => {
  const message = str(body, "detail", "the broker refused the request")
  const provider = str(body, "provider", context.provider ?? "")
  switch (body.code) {
    case "consent_required":
      return new ConsentRequired({
        subject: str(body, "subject", context.subject ?? ""),
        provider,
        reason: str(body, "reason", "no_grant") as ConsentRequiredReason,
        message
      })
    case "upstream_unavailable": {
      const retryAfter = typeof body.retryAfter === "number" ? Duration.seconds(body.retryAfter) : undefined
      return new UpstreamUnavailable({
        provider,
        reason: str(body, "reason", "server_error") as UpstreamUnavailable["reason"],
        retryAfter,
        message
      })
    }
    case "upstream_rejected":
      return new UpstreamRejected({
        provider,
        error: str(body, "error", "upstream_rejected"),
        errorDescription: typeof body.errorDescription === "string" ? body.errorDescription : undefined,
        message
      })
    case "invalid_subject_token":
      return new InvalidSubjectToken({
        reason: str(body, "reason", "malformed") as InvalidSubjectToken["reason"],
        message
      })
    case "audience_mismatch":
      return new AudienceMismatch({ expected: [], actual: [], message })
    case "provider_not_found":
      return new ProviderNotFound({ provider, message })
    case "authorization_not_pending":
      return new AuthorizationNotPending({ message })
    case "identity_mismatch":
      return new IdentityMismatch({
        subject: str(body, "subject", context.subject ?? ""),
        provider,
        consented: str(body, "consented", ""),
        message
      })
    case "storage_unavailable":
      return new StorageUnavailable({ operation: "remote", message })
    case "decryption_failed":
      return new DecryptionFailed({
        reason: str(body, "reason", "backend") as DecryptionFailed["reason"],
        kid: typeof body.kid === "string" ? body.kid : undefined,
        message
      })
    case "invalid_request":
      return new InvalidRequest({ field: str(body, "field", "request"), message })
    case "config_invalid":
      return new ConfigInvalid({ field: str(body, "field", "(broker)"), message })
    default:
      return undefined
  }
}

/** The broker's own refusals (authentication, policy, rate limit) for a TokenSource: a configuration problem. */
export const asUpstreamRejected = (
  error: BrokerRequestError,
  provider: string
): UpstreamRejected | UpstreamUnavailable =>
  error.status === 429 || error.status >= 500
    ? new UpstreamUnavailable({
        provider,
        reason: error.status === 429 ? "rate_limited" : "server_error",
        status: error.status,
        retryAfter: error.retryAfter,
        message: `The token broker answered ${error.status}: ${error.message}`
      })
    : new UpstreamRejected({
        provider,
        error: error.status === 401 ? "invalid_client" : error.status === 403 ? "access_denied" : error.code,
        status: error.status,
        message: `The token broker refused the request (${error.status} ${error.code}): ${error.message}`
      })
