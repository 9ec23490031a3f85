import { Effect } from "effect"
import type { ProviderClient, TokenSet, UpstreamError } from "../AuthorizationServer.js"
import { IdentityMismatch } from "../Errors.js"

/** Who consented, as the provider names the account, and where the broker read it. */
export interface ConsentedIdentity {
  readonly issuer: string
  readonly subject: string
  /** "the ID token's sub", or "userinfo field <name>". */
  readonly source: string
}

/**
 * The identity of the account that consented: the ID token's `iss`/`sub` where the provider issues ID
 * tokens; otherwise, where the check needs it, the configured userinfo endpoint's subject field, asked
 * with the access token just issued. Null when nothing names it (binding "any" without an ID token).
 */
export const consentedIdentity = (
  client: ProviderClient,
  set: TokenSet
): Effect.Effect<ConsentedIdentity | null, UpstreamError> => {
  if (set.idTokenClaims !== null) {
    return Effect.succeed({
      issuer: set.idTokenClaims.iss,
      subject: set.idTokenClaims.sub,
      source: "the ID token's sub"
    })
  }
  const config = client.config
  if ((config.identityBinding ?? "same-subject") === "any" && config.endpoints?.userinfo === undefined) {
    return Effect.succeed(null)
  }
  return Effect.map(client.userinfoSubject(set.accessToken), (subject) => ({
    issuer: config.issuer,
    subject,
    source: `userinfo field "${config.userinfoSubjectField ?? "sub"}"`
  }))
}

/** The identity check of `identityBinding`; a mismatch names what was compared and both values. */
export const checkBinding = (
  client: ProviderClient,
  subject: string,
  identity: ConsentedIdentity | null
): Effect.Effect<void, IdentityMismatch> => {
  const binding = client.config.identityBinding ?? "same-subject"
  if (binding === "any" || identity?.subject === subject) return Effect.void
  const provider = client.config.id
  const consented = identity?.subject ?? ""
  return Effect.fail(
    new IdentityMismatch({
      subject,
      provider,
      consented,
      message: `The account that consented at "${provider}" is "${consented}" (${
        identity?.source ?? "unknown"
      }), but the consent was started for subject "${subject}": identityBinding same-subject needs the two to be equal. Sign in at the provider as that account; if the provider's accounts are not the subjects, see identityBinding in the docs`
    })
  )
}

/**
 * Revokes (RFC 7009, with client authentication) what a consent that is refused after the code exchange
 * received: its refresh token, then its access token. The outcome is told in words (never a token);
 * a provider without a revocation endpoint, or one that fails, is reported, not raised.
 */
export const discardIssued = (client: ProviderClient, set: TokenSet): Effect.Effect<string> =>
  Effect.gen(function* () {
    const outcomes: Array<string> = []
    const tokens = [
      ...(set.refreshToken === null ? [] : [{ token: set.refreshToken, hint: "refresh_token" as const }]),
      { token: set.accessToken, hint: "access_token" as const }
    ]
    for (const { token, hint } of tokens) {
      const outcome = yield* client.revoke({ token, tokenTypeHint: hint }).pipe(
        Effect.as(`its ${hint.replace("_", " ")} was revoked`),
        Effect.catchAll((error) => {
          const code = error._tag === "UpstreamRejected" ? error.error : error.reason
          return Effect.as(
            Effect.logWarning("a refused consent's token could not be revoked at the provider").pipe(
              Effect.annotateLogs({ provider: client.config.id, tokenTypeHint: hint, code })
            ),
            `its ${hint.replace("_", " ")} could not be revoked (${code})`
          )
        })
      )
      outcomes.push(outcome)
    }
    return outcomes.join(", ")
  })
