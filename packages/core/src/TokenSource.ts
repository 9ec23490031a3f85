import { Context, Effect, Layer, type Option } from "effect"
import type {
  DecryptionFailed,
  InvalidRequest,
  ProviderNotFound,
  StorageUnavailable,
  UpstreamRejected,
  UpstreamUnavailable
} from "./Errors.js"
import {
  type GrantInfo,
  type GrantRef,
  type RejectedTokenReport,
  type RevokeResult,
  type StartAuthorizationRequest,
  TokenBroker,
  type TokenBrokerService
} from "./TokenBroker.js"

/**
 * Where an app gets upstream tokens from: the broker in this process, or a remote HTTP broker. Apps
 * (the MCP server, workers) depend on this tag only, so which one they use is a matter of config.
 *
 * The error unions are the broker's own. A remote source adds two meanings that keep the same types:
 * a broker that cannot be reached is `UpstreamUnavailable` (reason `network` or `timeout`, retryable),
 * and a broker that refuses the app's own credentials or policy is `UpstreamRejected` (error
 * `invalid_client`, `unauthorized_client`, `access_denied`: a configuration problem).
 */
export interface TokenSourceService {
  /** The broker's own contract: a remote source maps the HTTP answers back onto these errors. */
  readonly backgroundToken: TokenBrokerService["backgroundToken"]
  readonly sessionToken: TokenBrokerService["sessionToken"]
  /**
   * A cache hit of `backgroundToken`, synchronously (the in-process broker's `cachedToken`, counted as
   * a hit); undefined: call `backgroundToken`. For hot paths outside Effect; a source that has no
   * in-process cache (a remote broker) leaves it out.
   */
  readonly cachedBackgroundToken?: TokenBrokerService["cachedToken"] | undefined
  /** A cache hit of `sessionToken`, synchronously (the broker's `cachedSessionToken`), as above. */
  readonly cachedSessionToken?: TokenBrokerService["cachedSessionToken"] | undefined
  readonly startAuthorization: (
    request: StartAuthorizationRequest
  ) => Effect.Effect<
    StartedConsent,
    ProviderNotFound | UpstreamUnavailable | UpstreamRejected | StorageUnavailable | InvalidRequest
  >
  readonly grantStatus: (
    ref: GrantRef
  ) => Effect.Effect<
    Option.Option<GrantInfo>,
    StorageUnavailable | UpstreamUnavailable | UpstreamRejected | InvalidRequest
  >
  /**
   * The upstream API refused (401) a background token from this source: the broker drops it, so the
   * next `backgroundToken` refreshes (TokenBroker.reportRejected). None when no grant is stored.
   */
  readonly reportRejected: (
    report: RejectedTokenReport
  ) => Effect.Effect<
    Option.Option<GrantInfo>,
    StorageUnavailable | UpstreamUnavailable | UpstreamRejected | InvalidRequest
  >
  readonly revoke: (
    ref: GrantRef
  ) => Effect.Effect<
    RevokeResult,
    | ProviderNotFound
    | StorageUnavailable
    | DecryptionFailed
    | UpstreamUnavailable
    | UpstreamRejected
    | InvalidRequest
  >
}

/** A consent that was started: send the user's browser to `authorizationUrl` before `expiresAt` (epoch ms). */
export interface StartedConsent {
  readonly authorizationUrl: URL
  readonly expiresAt: number
}

export class TokenSource extends Context.Tag("@token-broker/core/TokenSource")<
  TokenSource,
  TokenSourceService
>() {}

/** A TokenSource over the TokenBroker of this process. */
export const fromBroker = (broker: Context.Tag.Service<TokenBroker>): TokenSourceService => ({
  backgroundToken: broker.backgroundToken,
  sessionToken: broker.sessionToken,
  cachedBackgroundToken: broker.cachedToken,
  cachedSessionToken: broker.cachedSessionToken,
  startAuthorization: (request) =>
    Effect.map(broker.startAuthorization(request), ({ authorizationUrl, expiresAt }) => ({
      authorizationUrl,
      expiresAt
    })),
  grantStatus: broker.grantStatus,
  reportRejected: broker.reportRejected,
  revoke: broker.revoke
})

/** The TokenSource of the in-process broker: needs the TokenBroker layer. */
export const layerFromBroker: Layer.Layer<TokenSource, never, TokenBroker> = Layer.effect(
  TokenSource,
  Effect.map(TokenBroker, fromBroker)
)
