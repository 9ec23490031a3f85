import { Context, type Effect, Layer, type Redacted } from "effect"
import type { ConfigInvalid, ProviderNotFound, UpstreamRejected, UpstreamUnavailable } from "./Errors.js"
import * as internal from "./internal/authorizationServer.js"
import type { Discovery, ProviderConfig } from "./Provider.js"

/**
 * The OAuth 2.0 / OpenID Connect client of one provider, on openid-client: cached discovery, refresh,
 * RFC 8693 exchange, authorization code + PKCE, RFC 7009 revocation, RFC 7662 introspection.
 * OAuth error responses are mapped faithfully: `invalid_grant` to `InvalidGrant` (core decides what it
 * means), network failures, timeouts, 5xx and 429 to `UpstreamUnavailable`, every other OAuth error to
 * `UpstreamRejected` (keeping `error`, `error_description` and the status).
 */

/**
 * What came back when a provider refused a refresh with a 400 or 401 and no OAuth error body (Glewlwyd
 * 2.7.5 answers a replayed or unknown refresh token with a bare 400). Never a secret: `body` is the
 * answer's first bytes with every token-like run replaced.
 */
export interface RefusalWithoutError {
  readonly status: number
  /** The answer's Content-Type, "none" when it sent none. */
  readonly contentType: string
  readonly body: string
}

/**
 * The provider answered `invalid_grant`: the refresh token (or code) is not (or no longer) valid. A
 * refresh refused with a 400/401 and no OAuth error is one too, with `refusal` saying what came back.
 */
export class InvalidGrant {
  readonly _tag = "InvalidGrant"
  constructor(
    readonly provider: string,
    readonly errorDescription: string | undefined,
    readonly refusal?: RefusalWithoutError | undefined
  ) {}
}

/**
 * The provider answered a refresh with a 2xx that failed validation (an unknown `token_type`, a missing
 * field, a body that is not JSON). The provider processed the request: the refresh token sent is
 * consumed. `refreshToken` is the successor recovered from a JSON body, when it carried one; the
 * outcome is unknown otherwise. Never logged: it holds a secret (redacted).
 */
export class UnreadableAnswer {
  readonly _tag = "UnreadableAnswer"
  constructor(
    readonly provider: string,
    readonly status: number,
    readonly refreshToken: Redacted.Redacted<string> | null,
    /** What failed validation (a stable code from the client library, never a body). */
    readonly problem: string
  ) {}
}

/** A token endpoint response, validated; times are absolute (epoch ms) from when it arrived. */
export interface TokenSet {
  readonly accessToken: Redacted.Redacted<string>
  readonly tokenType: string
  /** Absolute expiry of the access token; null when the provider sent no `expires_in`. */
  readonly expiresAt: number | null
  readonly refreshToken: Redacted.Redacted<string> | null
  /** From `refresh_expires_in` (or `refresh_token_expires_in`), when sent. */
  readonly refreshExpiresAt: number | null
  /** From the response's `scope`, sorted; null when the response names none. */
  readonly scopes: ReadonlyArray<string> | null
  /** RFC 8693 `issued_token_type`, when present. */
  readonly issuedTokenType: string | null
  /** The validated ID token's claims (code exchange only). */
  readonly idTokenClaims: {
    readonly iss: string
    readonly sub: string
    readonly [claim: string]: unknown
  } | null
}

export interface IntrospectionResult {
  readonly active: boolean
  readonly subject: string | null
  readonly clientId: string | null
  readonly scopes: ReadonlyArray<string>
  readonly audience: ReadonlyArray<string>
  readonly issuer: string | null
  readonly expiresAt: number | null
  /** The `token_type` the server reported (e.g. "Bearer", "refresh_token"), when it named one. */
  readonly tokenType?: string | undefined
}

export type UpstreamError = UpstreamUnavailable | UpstreamRejected

/** The metadata a provider's client works with (see `ProviderClient.metadata`). */
export interface ProviderMetadata {
  readonly discovery: Discovery
  /** Where it was read (`metadataUrl`); null with discovery "none". */
  readonly url: string | null
  /**
   * The RFC 8414 / OpenID Connect fields: the provider's document with the configured `endpoints` laid
   * over it; with discovery "none", only `issuer` and the configured endpoints.
   */
  readonly document: Readonly<Record<string, unknown>>
}

export interface ProviderClient {
  readonly config: ProviderConfig
  /**
   * The metadata every request of this client uses: read (once, cached) from the provider's OpenID
   * Connect discovery or RFC 8414 document, as `discovery` says, or with "none" the configured endpoints.
   */
  readonly metadata: Effect.Effect<ProviderMetadata, UpstreamError>
  /** Refresh grant; `scopes` downscopes the access token (the grant keeps its scope). */
  readonly refresh: (request: {
    readonly refreshToken: Redacted.Redacted<string>
    readonly scopes?: ReadonlyArray<string> | undefined
    readonly resource?: string | undefined
  }) => Effect.Effect<TokenSet, InvalidGrant | UnreadableAnswer | UpstreamError>
  /**
   * What the provider's metadata says of RFC 8693 token exchange: "listed" in `grant_types_supported`,
   * "not_listed" (the list is there and lacks it), or "unknown" (no `grant_types_supported`, or
   * discovery "none").
   */
  readonly tokenExchangeSupport: Effect.Effect<"listed" | "not_listed" | "unknown", UpstreamError>
  /**
   * RFC 8693 token exchange of an access token the provider trusts. A provider whose metadata does not
   * list the grant, or that answers `unsupported_grant_type`, fails `UpstreamRejected` with error
   * `unsupported_grant_type` and a message saying it does not support RFC 8693 token exchange.
   */
  readonly exchange: (request: {
    readonly subjectToken: Redacted.Redacted<string>
    readonly scopes: ReadonlyArray<string>
    readonly audience?: string | undefined
    readonly resource?: string | undefined
    readonly actorToken?: Redacted.Redacted<string> | undefined
  }) => Effect.Effect<TokenSet, InvalidGrant | UpstreamError>
  /** client_credentials (e.g. for an actor token). */
  readonly clientCredentials: (request: {
    readonly scopes: ReadonlyArray<string>
    readonly resource?: string | undefined
  }) => Effect.Effect<TokenSet, InvalidGrant | UpstreamError>
  /** The authorization URL for Flow 2 (PKCE S256, state, nonce; `prompt=consent` where asked). */
  readonly authorizationUrl: (request: {
    readonly state: string
    readonly nonce: string
    readonly codeChallenge: string
    readonly scopes: ReadonlyArray<string>
    readonly redirectUri: string
    readonly resource?: string | undefined
    readonly prompt?: string | undefined
  }) => Effect.Effect<URL, UpstreamError>
  /** Exchanges the code of a callback; validates state, iss and the ID token's nonce. */
  readonly exchangeCode: (request: {
    readonly callbackUrl: URL
    readonly expectedState: string
    readonly codeVerifier: Redacted.Redacted<string>
    readonly nonce: string
    readonly redirectUri: string
    readonly resource?: string | undefined
  }) => Effect.Effect<TokenSet, InvalidGrant | UpstreamError>
  /**
   * The account an access token was issued for, from the provider's userinfo(-style) endpoint (the
   * configured `endpoints.userinfo` or the metadata's): its `userinfoSubjectField` (default "sub"), a
   * number given as text. Fails when the provider has no such endpoint or the answer names no account.
   */
  readonly userinfoSubject: (accessToken: Redacted.Redacted<string>) => Effect.Effect<string, UpstreamError>
  /** RFC 7009 revocation with client authentication. Fails when the provider has no endpoint. */
  readonly revoke: (request: {
    readonly token: Redacted.Redacted<string>
    readonly tokenTypeHint: "refresh_token" | "access_token"
  }) => Effect.Effect<void, UpstreamError>
  readonly introspect: (token: Redacted.Redacted<string>) => Effect.Effect<IntrospectionResult, UpstreamError>
}

/** Every configured provider's client, by provider id. */
export interface AuthorizationServersService {
  readonly get: (provider: string) => Effect.Effect<ProviderClient, ProviderNotFound>
  readonly providers: ReadonlyArray<ProviderConfig>
}

export class AuthorizationServers extends Context.Tag("@token-broker/core/AuthorizationServers")<
  AuthorizationServers,
  AuthorizationServersService
>() {}

export type MakeOptions = internal.MakeOptions

/**
 * The start-up check of every provider configured for token exchange (`tokenExchange`) against its
 * metadata: a provider whose `grant_types_supported` lacks the token-exchange grant fails `ConfigInvalid`
 * naming `providers[i].tokenExchange`. A provider whose metadata says nothing (no `grant_types_supported`,
 * or discovery "none"), or that cannot be reached now, gives a warning (returned, for the app to log):
 * it is then known only at the first exchange.
 */
export const checkTokenExchange: (
  servers: AuthorizationServersService
) => Effect.Effect<ReadonlyArray<string>, ConfigInvalid> = internal.checkTokenExchange

/**
 * `checkTokenExchange` for one provider (configured at `providers[index]`): `ConfigInvalid` when its
 * metadata does not list the grant, a warning when the metadata says nothing or cannot be read, null
 * when the grant is listed or the provider is not configured for token exchange.
 */
export const checkProviderTokenExchange: (
  client: ProviderClient,
  index: number
) => Effect.Effect<string | null, ConfigInvalid> = internal.checkProviderTokenExchange

/**
 * Builds every provider's client on openid-client. Checks the configuration at once (an http:// issuer
 * without `allowInsecureRequests`, a bad private JWK, a duplicate id: `ConfigInvalid` naming the field);
 * discovery happens lazily on first use, is shared by concurrent callers and cached, and a failed discovery
 * is retried after `discoveryCooldown` (default 5 s).
 */
export const make: (
  providers: ReadonlyArray<ProviderConfig>,
  options?: MakeOptions
) => Effect.Effect<AuthorizationServersService, ConfigInvalid> = internal.make

/** `make` as a layer, with an HTTP agent (connection pool) of its own that is closed when the layer is released. */
export const layer = (
  providers: ReadonlyArray<ProviderConfig>,
  options?: MakeOptions
): Layer.Layer<AuthorizationServers, ConfigInvalid> =>
  Layer.scoped(AuthorizationServers, internal.withScopedAgent(internal.make(providers, options)))

/**
 * The `internalBaseUrl` rewrite every request of a provider's client goes through: a URL starting with
 * `from` (a whole origin or path prefix) starts with `to` instead; any other URL is unchanged.
 */
export const rewriteUrl: (rewrite: ProviderConfig["internalBaseUrl"], url: string) => string =
  internal.rewriteUrl
