import { Effect } from "effect"
import { errors, type JWTPayload } from "jose"
import { AudienceMismatch, InvalidSubjectToken } from "../Errors.js"
import * as Scopes from "../Scopes.js"
import type { VerifiedToken } from "../TokenVerifier.js"

// The claim rules of a verified access token: what jose's refusals mean to a caller, and how the
// audience and scopes are read and checked.

export const ACCESS_TOKEN_TYP = "at+jwt"

export const invalid = (reason: InvalidSubjectToken["reason"], message: string) =>
  new InvalidSubjectToken({ reason, message })

export const mapJoseError = (cause: unknown): InvalidSubjectToken => {
  if (cause instanceof errors.JWTExpired) return invalid("expired", "the token has expired")
  if (cause instanceof errors.JWTClaimValidationFailed) {
    switch (cause.claim) {
      case "nbf":
        return invalid("not_yet_valid", "the token is not valid yet (nbf)")
      case "typ":
        return invalid("token_type", `the token is not an access token (typ must be ${ACCESS_TOKEN_TYP})`)
      case "iss":
        return invalid("issuer", "the token's issuer is not accepted")
      default:
        return invalid("malformed", `the token's "${cause.claim}" claim is ${cause.reason}`)
    }
  }
  if (
    cause instanceof errors.JWSSignatureVerificationFailed ||
    cause instanceof errors.JWKSNoMatchingKey ||
    cause instanceof errors.JWKSMultipleMatchingKeys ||
    cause instanceof errors.JOSEAlgNotAllowed
  ) {
    return invalid("signature", "the token's signature does not verify against the issuer's keys")
  }
  if (cause instanceof errors.JWSInvalid || cause instanceof errors.JWTInvalid) {
    return invalid("malformed", "the token is not a well-formed JWT")
  }
  if (cause instanceof errors.JOSENotSupported) {
    return invalid("signature", "the token's algorithm or key type is not supported")
  }
  return invalid("unverifiable", "the issuer's keys could not be fetched")
}

export const audienceOf = (aud: unknown): ReadonlyArray<string> =>
  typeof aud === "string" ? [aud] : Array.isArray(aud) ? aud.filter((a) => typeof a === "string") : []

export const scopesOf = (payload: JWTPayload): ReadonlyArray<string> => {
  const scope = payload.scope
  if (typeof scope === "string") return Scopes.split(scope)
  const scp = payload.scp
  if (Array.isArray(scp)) return Scopes.normalize(scp.filter((s) => typeof s === "string"))
  return []
}

export const checkAudience = (
  verified: VerifiedToken,
  expected: ReadonlyArray<string>
): Effect.Effect<VerifiedToken, AudienceMismatch> =>
  verified.audience.some((aud) => expected.includes(aud))
    ? Effect.succeed(verified)
    : Effect.fail(
        new AudienceMismatch({
          expected,
          actual: verified.audience,
          message: `the token was issued for ${
            verified.audience.length === 0 ? "no audience" : verified.audience.join(", ")
          }, not for ${expected.join(", ")}`
        })
      )
