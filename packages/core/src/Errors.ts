import { type Cause, Data, type Duration, type Types } from "effect"

/**
 * The typed error vocabulary of token-broker. Every error has a stable `_tag` and `code`: both are part
 * of the public API, so callers can switch on them. No error ever carries a token, key or secret.
 */

/** A tagged error class whose instances carry the stable `code` and a `message`. */
type CodedErrorClass<Tag extends string, Code extends string> = new <A extends Record<string, unknown> = {}>(
  args: Types.Simplify<
    { readonly [P in keyof A as P extends "_tag" | "code" ? never : P]: A[P] } & {
      readonly message: string
    }
  >
) => Cause.YieldableError & { readonly _tag: Tag; readonly code: Code } & Readonly<A>

/**
 * The base of every error below: `Data.TaggedError(tag)` with the stable `code` beside the tag, so the
 * two are written once, side by side.
 */
const CodedError = <const Tag extends string, const Code extends string>(
  tag: Tag,
  code: Code
): CodedErrorClass<Tag, Code> => {
  class Coded extends Data.TaggedError(tag)<{ readonly message: string }> {
    readonly code = code
  }
  return Coded as unknown as CodedErrorClass<Tag, Code>
}

/** The subject has no usable grant for the provider: send the user through consent (Flow 2). */
export class ConsentRequired extends CodedError("ConsentRequired", "consent_required")<{
  readonly subject: string
  readonly provider: string
  readonly reason: ConsentRequiredReason
}> {}

export type ConsentRequiredReason =
  /** No grant is stored for this subject and provider. */
  | "no_grant"
  /** The provider answered `invalid_grant` and no other writer had rotated the token. */
  | "invalid_grant"
  /**
   * The provider refused the refresh with a 400 or 401 and no OAuth error body (as Glewlwyd does for a
   * replayed or unknown refresh token), and no other writer had rotated the token.
   */
  | "refused_without_error"
  /** The grant was marked earlier (`reconsent_required`). */
  | "reconsent_required"
  /** The refresh token's own lifetime has ended. */
  | "refresh_token_expired"
  /** The scopes asked for are not part of the grant. */
  | "scope_not_granted"
  /**
   * A refresh may have reached the provider and rotated the token, but its result was never stored
   * (the broker crashed or lost its lease mid-refresh); the provider then refused the stored token.
   */
  | "rotation_lost"
  /** Callers reported the newest access token refused upstream (401) after several refreshes in a row. */
  | "access_token_rejected"

/**
 * The provider could not be reached, timed out, answered 5xx or 429, or answered a refresh with a body
 * that could not be read (`invalid_response`). Retryable. Where the provider may have processed the
 * request (every reason but `rate_limited`, `circuit_open` and `lease_timeout`), the broker did not retry
 * it with the same refresh token.
 */
export class UpstreamUnavailable extends CodedError("UpstreamUnavailable", "upstream_unavailable")<{
  readonly provider: string
  readonly reason:
    | "network"
    | "timeout"
    | "server_error"
    | "rate_limited"
    | "circuit_open"
    | "lease_timeout"
    | "invalid_response"
  readonly status?: number | undefined
  readonly retryAfter?: Duration.Duration | undefined
}> {
  readonly retryable = true as const
}

/** The provider refused the request for a reason that retrying will not fix: a configuration problem. */
export class UpstreamRejected extends CodedError("UpstreamRejected", "upstream_rejected")<{
  readonly provider: string
  readonly error: string
  readonly errorDescription?: string | undefined
  readonly status?: number | undefined
}> {}

/** The token presented as the user's token is not valid (signature, expiry, issuer, type, ...). */
export class InvalidSubjectToken extends CodedError("InvalidSubjectToken", "invalid_subject_token")<{
  readonly reason:
    | "malformed"
    | "signature"
    | "expired"
    | "not_yet_valid"
    | "issuer"
    | "token_type"
    | "inactive"
    | "unverifiable"
}> {}

/** The token is valid but was issued for another audience (RFC 8707 resource). */
export class AudienceMismatch extends CodedError("AudienceMismatch", "audience_mismatch")<{
  readonly expected: ReadonlyArray<string>
  readonly actual: ReadonlyArray<string>
}> {}

export class ProviderNotFound extends CodedError("ProviderNotFound", "provider_not_found")<{
  readonly provider: string
}> {}

/** The `state` of a consent callback is unknown, already used or expired. */
export class AuthorizationNotPending extends CodedError(
  "AuthorizationNotPending",
  "authorization_not_pending"
)<{}> {}

/**
 * The identity that consented at the provider may not be bound to the subject that asked. `consented`
 * is the provider's identifier of the account that consented (a `sub`, or a userinfo field: not a secret).
 */
export class IdentityMismatch extends CodedError("IdentityMismatch", "identity_mismatch")<{
  readonly subject: string
  readonly provider: string
  readonly consented: string
}> {}

/** The grant store could not be reached or failed. Retryable; nothing was written. */
export class StorageUnavailable extends CodedError("StorageUnavailable", "storage_unavailable")<{
  readonly operation: string
  readonly cause?: unknown
}> {
  readonly retryable = true as const
}

/** A stored secret could not be decrypted: wrong or missing key, tampering, or a record moved elsewhere. */
export class DecryptionFailed extends CodedError("DecryptionFailed", "decryption_failed")<{
  readonly kid?: string | undefined
  readonly reason: "unknown_key" | "malformed" | "authentication_failed" | "backend"
}> {}

/** A request was malformed: the field names what is wrong. */
export class InvalidRequest extends CodedError("InvalidRequest", "invalid_request")<{
  readonly field: string
}> {}

/** The configuration is invalid; the message names the field and the fix. */
export class ConfigInvalid extends CodedError("ConfigInvalid", "config_invalid")<{
  readonly field: string
}> {}

/**
 * What a background token (Flow 2) can fail with: `TokenBroker.backgroundToken`, `rotateRefreshToken`, a
 * `TokenSource` and the HTTP client's `backgroundToken` (which adds its own transport errors).
 */
export type BackgroundTokenError =
  | ConsentRequired
  | UpstreamUnavailable
  | UpstreamRejected
  | ProviderNotFound
  | StorageUnavailable
  | DecryptionFailed
  | InvalidRequest

/** Every error a token-broker use case can fail with. */
export type TokenBrokerError =
  | ConsentRequired
  | UpstreamUnavailable
  | UpstreamRejected
  | InvalidSubjectToken
  | AudienceMismatch
  | ProviderNotFound
  | AuthorizationNotPending
  | IdentityMismatch
  | StorageUnavailable
  | DecryptionFailed
  | ConfigInvalid
  | InvalidRequest

export type ErrorCode = TokenBrokerError["code"]
