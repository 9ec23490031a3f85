import { Context, type Effect, Layer, type Redacted } from "effect"
import type { AudienceMismatch, ConfigInvalid, InvalidSubjectToken } from "./Errors.js"
import { withScopedAgent } from "./internal/providerFetch.js"
import * as internal from "./internal/tokenVerifier.js"

/** A user token that passed verification. */
export interface VerifiedToken {
  readonly issuer: string
  readonly subject: string
  readonly audience: ReadonlyArray<string>
  readonly scopes: ReadonlyArray<string>
  /** Epoch ms. */
  readonly expiresAt: number
  readonly clientId: string | null
  readonly claims: Readonly<Record<string, unknown>>
}

/**
 * Validates incoming user tokens (Flow 1). JWTs: signature against the issuer's JWKS (jose), `iss`,
 * `aud` (RFC 8707 resource), `exp`/`nbf` with a small leeway, header `typ` `at+jwt` (an ID token is
 * never accepted as an access token). Opaque tokens: RFC 7662 introspection, cached briefly.
 */
export interface TokenVerifierService {
  readonly verify: (
    token: Redacted.Redacted<string>,
    expected: { readonly audience: string | ReadonlyArray<string> }
  ) => Effect.Effect<VerifiedToken, InvalidSubjectToken | AudienceMismatch>
  /**
   * A JWT's verification, synchronously, while this verifier remembers it (`verifiedTokenCacheTtl`, never
   * past the token's `exp`, by the verifier's `Clock` when it was built) and the token is for one of the
   * expected audiences; undefined otherwise (then call `verify`, which names the problem). For hot paths
   * outside Effect; a verifier that remembers nothing may leave it out.
   */
  readonly remembered?: (
    token: Redacted.Redacted<string>,
    expected: { readonly audience: string | ReadonlyArray<string> }
  ) => VerifiedToken | undefined
}

export class TokenVerifier extends Context.Tag("@token-broker/core/TokenVerifier")<
  TokenVerifier,
  TokenVerifierService
>() {}

export type TokenVerifierOptions = internal.TokenVerifierOptions
export type IssuerOptions = internal.IssuerOptions
export type IntrospectionOptions = internal.IntrospectionOptions

/**
 * Builds a verifier for the given issuers (jose for JWTs, openid-client for RFC 7662 introspection).
 * Time comes from Effect's `Clock`. Fails with `ConfigInvalid` naming the field (an http:// URL without
 * `allowInsecureRequests`, a duplicate issuer, more than one introspecting issuer).
 */
export const make: (options: TokenVerifierOptions) => Effect.Effect<TokenVerifierService, ConfigInvalid> =
  internal.make

/** `make` as a layer; introspection requests use an HTTP agent of their own, closed when the layer is released. */
export const layer = (options: TokenVerifierOptions): Layer.Layer<TokenVerifier, ConfigInvalid> =>
  Layer.scoped(TokenVerifier, withScopedAgent(internal.make(options)))
