import type { Duration, Redacted } from "effect"

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
  /** The issuer; discovery is `${issuer}/.well-known/openid-configuration` (or OAuth AS metadata). */
  readonly issuer: string
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
   * Which consenting identity may be bound to a subject. "same-subject": the ID token's `sub` must
   * equal the subject (the default when the provider is also Flow 1's issuer); "any": any identity
   * (the provider has its own accounts, and the subject is authenticated by the broker's caller).
   */
  readonly identityBinding?: "same-subject" | "any" | undefined
}
