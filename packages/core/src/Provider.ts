import type { Duration, Redacted } from "effect"
import * as Scopes from "./Scopes.js"

/** How `client_secret_basic` encodes the client id and secret before Base64. */
export type BasicEncoding = "form" | "plain"

/** How the broker authenticates to a provider's token, revocation and introspection endpoints. */
export type ClientAuthentication =
  | {
      readonly method: "client_secret_basic"
      readonly clientSecret: Redacted.Redacted<string>
      /**
       * How id and secret are put in the Basic credentials. "form" (the default): form-encoded before
       * Base64, as RFC 6749 section 2.3.1 asks (`-`, `_`, `.` and others become `%2D`...). "plain": as
       * they are, for providers that do not decode them (Glewlwyd 2.7.5, many others); `token-broker
       * doctor` tells which one a provider accepts.
       */
      readonly encoding?: BasicEncoding | undefined
    }
  | { readonly method: "client_secret_post"; readonly clientSecret: Redacted.Redacted<string> }
  | {
      readonly method: "private_key_jwt"
      /** The private JWK (JSON text) the broker signs client assertions with. */
      readonly privateJwk: Redacted.Redacted<string>
    }
  | { readonly method: "none" }

/** One upstream authorization server + API the broker obtains tokens for. */
export interface ProviderConfig {
  /** The provider's id in grants and requests, e.g. "nextcloud". */
  readonly id: string
  /**
   * The issuer. Its metadata is at `${issuer}/.well-known/openid-configuration` (discovery
   * "openid-configuration", the default) or `${issuer}/.well-known/oauth-authorization-server`
   * ("oauth-authorization-server", RFC 8414); with "none" it is only compared with an `iss` the provider sends.
   */
  readonly issuer: string
  /**
   * Where the provider's endpoints come from. "openid-configuration" (default): OpenID Connect discovery,
   * and the code exchange must carry an ID token (its nonce checked). "oauth-authorization-server": RFC 8414
   * metadata; "none": only `endpoints`. With either of these two the provider is plain OAuth 2.0: no
   * `openid` scope is asked, no nonce sent, no ID token expected.
   */
  readonly discovery?: Discovery | undefined
  /**
   * Endpoints given in the config. With discovery "none", `authorization` and `token` are required; with
   * discovery, each one given replaces the one in the metadata (e.g. a `userinfo` the metadata lacks).
   */
  readonly endpoints?: ProviderEndpoints | undefined
  /**
   * Extra parameters of the authorization request (e.g. Google's `access_type: offline`). The
   * parameters the broker sets itself (`RESERVED_AUTHORIZATION_PARAMETERS`) are refused.
   */
  readonly authorizationParameters?: Readonly<Record<string, string>> | undefined
  /**
   * The scope that asks the provider for a refresh token, added to every consent; `null` when the
   * provider issues refresh tokens without one (e.g. GitHub Apps). Default "offline_access". Where it is
   * asked, the authorization request also carries `prompt=consent` (unless `authorizationParameters` sets `prompt`).
   */
  readonly offlineAccessScope?: string | null | undefined
  /**
   * The field of the userinfo endpoint's JSON answer that identifies the account (default "sub"; GitHub's
   * `/user`: "id"). Used for the identity check when the provider issues no ID token.
   */
  readonly userinfoSubjectField?: string | undefined
  /**
   * Error codes the provider answers where RFC 6749 says `invalid_grant` (a dead refresh token), e.g.
   * GitHub's `bad_refresh_token`: treated as `invalid_grant`, so the grant asks for consent again.
   */
  readonly invalidGrantErrors?: ReadonlyArray<string> | undefined
  readonly clientId: string
  readonly clientAuthentication: ClientAuthentication
  /** Where the provider sends the browser after consent (the broker's `/connect/callback`). */
  readonly redirectUri: string
  /** Scopes asked at consent when a request names none. */
  readonly defaultScopes: ReadonlyArray<string>
  /** The upstream API's resource indicator (RFC 8707), sent on refresh, exchange and authorization. */
  readonly resource?: string | undefined
  /**
   * The public-to-internal rewrite: the discovery document shows public URLs (`from`), but the broker
   * must reach the provider on an internal base URL (`to`). Every endpoint starting with `from` is
   * rewritten; the issuer itself is unchanged (tokens still name the public issuer).
   */
  readonly internalBaseUrl?: { readonly from: string; readonly to: string } | undefined
  /** Allow http:// endpoints. For local development and tests only; never on by default. */
  readonly allowInsecureRequests?: boolean | undefined
  /** Timeout of one upstream HTTP request (shorter than the refresh lease). Default 10 s. */
  readonly requestTimeout?: Duration.DurationInput | undefined
  /** The refresh token's lifetime when the provider sends no `refresh_expires_in`; unbounded when unset. */
  readonly refreshTokenLifetime?: Duration.DurationInput | undefined
  /** RFC 8693 exchange settings; absent means the provider is not used for session tokens. */
  readonly tokenExchange?:
    | {
        /** Send an `actor_token` obtained by client_credentials, so issued tokens carry an `act` claim. */
        readonly actorToken?: boolean | undefined
      }
    | undefined
  /**
   * Which consenting identity may be bound to a subject. "same-subject" (default): the identity of the
   * account that consented must equal the subject - the ID token's `sub`, or for a provider without ID
   * tokens the `userinfoSubjectField` of the `endpoints.userinfo` answer; "any": no check (the provider
   * has its own accounts, and the subject is authenticated by the broker's caller).
   */
  readonly identityBinding?: "same-subject" | "any" | undefined
  /**
   * What a consent does to the active grant it replaces (a subject connecting again, e.g. for more
   * scopes). "revoke" (default): once the new grant is stored, the replaced refresh token and its current
   * access tokens are revoked at the provider (RFC 7009), so no credential stays live that nothing holds.
   * "keep": left as they are, for a provider whose revocation of one refresh token ends every grant of
   * the client and user, the new consent's included. A replaced token equal to the new one is never revoked.
   */
  readonly replacedGrants?: "revoke" | "keep" | undefined
}

export type Discovery = "openid-configuration" | "oauth-authorization-server" | "none"

export interface ProviderEndpoints {
  readonly authorization?: string | undefined
  readonly token?: string | undefined
  readonly revocation?: string | undefined
  readonly introspection?: string | undefined
  readonly jwks?: string | undefined
  /** A userinfo-style endpoint: GET with the access token, a JSON object naming the account. */
  readonly userinfo?: string | undefined
}

/** Authorization request parameters the broker sets itself; `authorizationParameters` may not name them. */
export const RESERVED_AUTHORIZATION_PARAMETERS: ReadonlyArray<string> = [
  "client_id",
  "redirect_uri",
  "response_type",
  "response_mode",
  "scope",
  "state",
  "nonce",
  "code_challenge",
  "code_challenge_method",
  "resource",
  "request",
  "request_uri"
]

/**
 * The scope every consent asks so that the provider issues a refresh token: `offlineAccessScope`
 * ("offline_access" when unset), or null when the provider issues refresh tokens without one.
 */
export const offlineScopeOf = (provider: Pick<ProviderConfig, "offlineAccessScope">): string | null =>
  provider.offlineAccessScope === undefined ? "offline_access" : provider.offlineAccessScope

/**
 * Where the provider's metadata is read (before any `internalBaseUrl` rewrite): OpenID Connect discovery
 * appends `/.well-known/openid-configuration` to the issuer, RFC 8414 inserts
 * `/.well-known/oauth-authorization-server` before the issuer's path; null with discovery "none".
 */
export const metadataUrl = (provider: Pick<ProviderConfig, "issuer" | "discovery">): string | null => {
  const discovery = provider.discovery ?? "openid-configuration"
  if (discovery === "none") return null
  const url = new URL(provider.issuer)
  const path = url.pathname === "/" ? "" : url.pathname.replace(/\/$/, "")
  url.pathname =
    discovery === "openid-configuration"
      ? `${path}/.well-known/openid-configuration`
      : `/.well-known/oauth-authorization-server${path}`
  return url.href
}

/** Whether the provider's code exchange carries an ID token (OpenID Connect discovery only). */
export const expectsIdToken = (provider: Pick<ProviderConfig, "discovery">): boolean =>
  (provider.discovery ?? "openid-configuration") === "openid-configuration"

/**
 * The problem with a provider's discovery, endpoints, identity check or authorization parameters, named
 * by field (relative to the provider), or undefined when there is none. Checked at config load and when
 * the provider's client is built.
 */
export const providerSettingsProblem = (
  provider: Pick<
    ProviderConfig,
    "id" | "discovery" | "endpoints" | "identityBinding" | "authorizationParameters" | "offlineAccessScope"
  >
): { readonly field: string; readonly message: string } | undefined => {
  const discovery = provider.discovery ?? "openid-configuration"
  const endpoints = provider.endpoints ?? {}
  if (discovery === "none") {
    for (const name of ["authorization", "token"] as const) {
      if (endpoints[name] === undefined) {
        return {
          field: `endpoints.${name}`,
          message: `provider "${provider.id}" has discovery: none, so endpoints.${name} must be configured`
        }
      }
    }
  }
  if (!expectsIdToken(provider) && (provider.identityBinding ?? "same-subject") === "same-subject") {
    if (endpoints.userinfo === undefined) {
      return {
        field: "identityBinding",
        message: `provider "${provider.id}" is plain OAuth 2.0 (discovery: ${discovery}): it issues no ID token, so identityBinding: same-subject needs endpoints.userinfo (and userinfoSubjectField, default "sub") to learn who consented; or set identityBinding: any, which binds whichever account consents to the subject`
      }
    }
  }
  for (const name of Object.keys(provider.authorizationParameters ?? {})) {
    if (RESERVED_AUTHORIZATION_PARAMETERS.includes(name)) {
      return {
        field: `authorizationParameters.${name}`,
        message: `provider "${provider.id}": authorizationParameters may not set "${name}", which the broker sets itself (reserved: ${RESERVED_AUTHORIZATION_PARAMETERS.join(", ")})`
      }
    }
  }
  if (provider.offlineAccessScope !== undefined && provider.offlineAccessScope !== null) {
    if (!Scopes.isScopeToken(provider.offlineAccessScope)) {
      return {
        field: "offlineAccessScope",
        message: `provider "${provider.id}": offlineAccessScope must be one scope word (printable ASCII, no spaces or quotes), or null`
      }
    }
  }
  return undefined
}
