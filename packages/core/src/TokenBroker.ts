import { Context, Duration, Effect, Layer, type Option, type Redacted, type Scope } from "effect"
import { AccessTokenCache } from "./AccessTokenCache.js"
import { AuthorizationServers } from "./AuthorizationServer.js"
import type {
  AudienceMismatch,
  AuthorizationNotPending,
  BackgroundTokenError,
  DecryptionFailed,
  IdentityMismatch,
  InvalidRequest,
  InvalidSubjectToken,
  ProviderNotFound,
  StorageUnavailable,
  UpstreamRejected,
  UpstreamUnavailable
} from "./Errors.js"
import type { GrantFilter, GrantKey, GrantStatus } from "./Grant.js"
import { GrantStore } from "./GrantStore.js"
import { makeBackgroundTokens } from "./internal/backgroundTokens.js"
import { type BrokerContext, DEFAULT_TENANT, grantKeyOf } from "./internal/brokerContext.js"
import { makeConsentFlow } from "./internal/consentFlow.js"
import { makeGrantAdministration } from "./internal/grantAdministration.js"
import { randomToken } from "./internal/random.js"
import { makeGrantLocks } from "./internal/refreshLocks.js"
import { makeRefreshProtocol, type RefreshSettings, type RefreshStep } from "./internal/refreshProtocol.js"
import { makeSessionExchange } from "./internal/sessionExchange.js"
import { makeSingleFlight } from "./internal/singleFlight.js"
import { KeyRing } from "./KeyRing.js"
import { TokenVerifier } from "./TokenVerifier.js"

/**
 * The broker's use cases as one service. This module declares the tag, the requests and answers, and the
 * layer; each group of use cases lives in its own module: background tokens (`internal/backgroundTokens`),
 * session exchange (`internal/sessionExchange`), consent (`internal/consentFlow`) and grant administration
 * (`internal/grantAdministration`).
 */

/** An access token handed out by the broker. */
export interface IssuedToken {
  readonly accessToken: Redacted.Redacted<string>
  readonly tokenType: "Bearer"
  /** Epoch ms. */
  readonly expiresAt: number
  readonly scopes: ReadonlyArray<string>
  /** Where it came from: the in-process cache, the store (another replica refreshed), or a refresh now. */
  readonly source: "cache" | "store" | "refresh" | "exchange"
}

/** A grant as callers see it: metadata only, never a token. */
export interface GrantInfo {
  readonly tenant: string
  readonly subject: string
  readonly provider: string
  readonly version: number
  readonly status: GrantStatus
  readonly scopes: ReadonlyArray<string>
  readonly identity: { readonly issuer: string; readonly subject: string } | null
  readonly refreshTokenExpiresAt: number | null
  readonly accessTokenExpiresAt: number | null
  readonly createdAt: number
  readonly updatedAt: number
  readonly lastRefreshedAt: number | null
  readonly failureCount: number
  readonly lastErrorCode: string | null
}

export interface GrantRef {
  readonly tenant?: string | undefined
  readonly subject: string
  readonly provider: string
}

export interface BackgroundTokenRequest extends GrantRef {
  /** Downscope: the token carries only these scopes (a subset of the grant's). Default: the grant's. */
  readonly scopes?: ReadonlyArray<string> | undefined
  /** Never serve a token that lives less than this. */
  readonly minTtl?: Duration.DurationInput | undefined
}

export interface RejectedTokenReport extends GrantRef {
  /** The access token the upstream API refused. */
  readonly accessToken: Redacted.Redacted<string>
}

export interface SessionTokenRequest {
  /** The user's own token (Flow 1), verified before it is exchanged. */
  readonly subjectToken: Redacted.Redacted<string>
  readonly provider: string
  /** At least one scope; left out: the scopes the provider grants for the subject token. */
  readonly scopes?: ReadonlyArray<string> | undefined
  /** The upstream audience; defaults to the provider's resource. */
  readonly audience?: string | undefined
}

export interface StartAuthorizationRequest extends GrantRef {
  readonly scopes?: ReadonlyArray<string> | undefined
  /** Where the app wants the user to land after consent (not validated here: apps allow-list it). */
  readonly returnTo?: string | undefined
}

export interface StartedAuthorization {
  readonly authorizationUrl: URL
  readonly state: Redacted.Redacted<string>
  readonly expiresAt: number
}

export interface CompletedAuthorization {
  readonly grant: GrantInfo
  readonly returnTo: string | null
}

/** What the provider said to the RFC 7009 revocation of a grant's refresh token (`RevokeResult.upstream`). */
export const upstreamRevocationOutcomes = ["revoked", "failed", "not_supported", "not_attempted"] as const

/** What became of a revoked grant's current access tokens (`RevokeResult.accessTokens`). */
export const accessTokenRevocationOutcomes = [
  "revoked",
  "none",
  "not_supported",
  "failed",
  "not_attempted"
] as const

export interface RevokeResult {
  /** A grant was stored and is now removed. */
  readonly removed: boolean
  /** What the provider said to the RFC 7009 call. */
  readonly upstream: (typeof upstreamRevocationOutcomes)[number]
  readonly upstreamError?: { readonly code: string; readonly message: string } | undefined
  /**
   * The grant's current (unexpired) access tokens, revoked too with `token_type_hint=access_token`:
   * "revoked" (every one), "none" (no current one), "not_supported" (the provider answered
   * `unsupported_token_type`, or has no revocation endpoint), "failed", "not_attempted" (no grant).
   */
  readonly accessTokens: (typeof accessTokenRevocationOutcomes)[number]
  /** What the provider confirmed it revoked. */
  readonly revokedAtProvider: { readonly refreshToken: boolean; readonly accessTokens: number }
}

export interface GrantList {
  readonly items: ReadonlyArray<GrantInfo>
  readonly nextCursor: string | null
}

export interface TokenBrokerOptions {
  /** The tenant of requests that name none. Default "default". */
  readonly tenant?: string | undefined
  /**
   * Cached and stored tokens are refreshed this long before they expire (with up to 25 % jitter), but
   * never earlier than `earlyRefreshShare` of their issued lifetime before expiry. Default 60 s.
   */
  readonly earlyRefresh?: Duration.DurationInput | undefined
  /**
   * The largest share (0-1] of an access token's issued lifetime that the early refresh may take:
   * with the default 0.25, a 60 s token is refreshed 15 s before it expires, not on every call.
   */
  readonly earlyRefreshShare?: number | undefined
  /** The grant lease: its lifetime (renewed while held) and how long to wait for it. Default 30 s / 20 s. */
  readonly lease?:
    | { readonly ttl?: Duration.DurationInput; readonly wait?: Duration.DurationInput }
    | undefined
  /** Transient-failure retries of one refresh. Default 3 attempts, 200 ms base delay, 10 s deadline. */
  readonly retry?:
    | {
        readonly attempts?: number
        readonly baseDelay?: Duration.DurationInput
        readonly deadline?: Duration.DurationInput
      }
    | undefined
  /** The per-provider circuit. Default: opens after 5 consecutive transient failures, for 30 s. */
  readonly circuit?:
    | { readonly failureThreshold?: number; readonly openFor?: Duration.DurationInput }
    | undefined
  /** Most refreshes in flight at once per provider from this process. Default 32. */
  readonly maxConcurrentRefreshes?: number | undefined
  /**
   * How many refreshes in a row whose newest access token callers report refused upstream (401) mark the
   * grant for consent again. Default 3.
   */
  readonly rejectionsBeforeReconsent?: number | undefined
  /** Lifetime of a pending consent. Default 10 minutes. */
  readonly pendingTtl?: Duration.DurationInput | undefined
  /** The audiences a session (Flow 1) token must carry to be exchanged: this broker / MCP server. */
  readonly sessionAudience?: string | ReadonlyArray<string> | undefined
  /** The lease owner id of this broker instance. Default: random. */
  readonly instanceId?: string | undefined
  /**
   * Called at each step of a refresh under the lease: before the upstream call (the attempt is
   * recorded), after the provider answered (before the result is written), and after the write. For
   * tracing, and for fault-injection suites that stop a process at a precise step.
   */
  readonly onRefreshStep?: ((step: RefreshStep, key: GrantKey) => Effect.Effect<void>) | undefined
}

export interface TokenBrokerService {
  readonly backgroundToken: (
    request: BackgroundTokenRequest
  ) => Effect.Effect<IssuedToken, BackgroundTokenError>
  readonly sessionToken: (
    request: SessionTokenRequest
  ) => Effect.Effect<
    IssuedToken,
    | InvalidSubjectToken
    | AudienceMismatch
    | UpstreamUnavailable
    | UpstreamRejected
    | ProviderNotFound
    | InvalidRequest
  >
  readonly startAuthorization: (
    request: StartAuthorizationRequest
  ) => Effect.Effect<
    StartedAuthorization,
    ProviderNotFound | UpstreamUnavailable | UpstreamRejected | StorageUnavailable | InvalidRequest
  >
  readonly completeAuthorization: (
    callback: URL | URLSearchParams | Readonly<Record<string, string>>
  ) => Effect.Effect<
    CompletedAuthorization,
    | AuthorizationNotPending
    | IdentityMismatch
    | ProviderNotFound
    | UpstreamUnavailable
    | UpstreamRejected
    | StorageUnavailable
    | DecryptionFailed
  >
  readonly grantStatus: (ref: GrantRef) => Effect.Effect<Option.Option<GrantInfo>, StorageUnavailable>
  readonly listGrants: (request: {
    readonly filter?: GrantFilter | undefined
    readonly cursor?: string | null | undefined
    readonly limit?: number | undefined
  }) => Effect.Effect<GrantList, StorageUnavailable | InvalidRequest>
  readonly revoke: (
    ref: GrantRef
  ) => Effect.Effect<RevokeResult, ProviderNotFound | StorageUnavailable | DecryptionFailed>
  /**
   * The cached token for a background request, synchronously, when the in-process cache has one that
   * lives long enough; undefined otherwise (then call `backgroundToken`). For hot paths outside Effect.
   */
  readonly cachedToken: (request: BackgroundTokenRequest) => IssuedToken | undefined
  /**
   * `sessionToken` synchronously for a repeat request: when the verifier still remembers the subject
   * token (fresh, for the session audience: `TokenVerifierService.remembered`) and the in-process cache
   * holds its session token; undefined otherwise (then call `sessionToken`, which names any refusal).
   * Counts as a cached exchange. For hot paths outside Effect.
   */
  readonly cachedSessionToken: (request: SessionTokenRequest) => IssuedToken | undefined
  /**
   * The upstream API refused (401) an access token the broker handed out. The token is dropped from the
   * cache and the store, so the next call refreshes; the newest token of a grant refused after
   * `rejectionsBeforeReconsent` refreshes in a row marks the grant `reconsent_required`. Answers the grant
   * after the report (none when no grant is stored).
   */
  readonly reportRejected: (
    request: RejectedTokenReport
  ) => Effect.Effect<Option.Option<GrantInfo>, StorageUnavailable | InvalidRequest>
  /** Refreshes now, whatever the cache says: rotates the refresh token where the provider rotates. */
  readonly rotateRefreshToken: (ref: GrantRef) => Effect.Effect<GrantInfo, BackgroundTokenError>
}

export class TokenBroker extends Context.Tag("@token-broker/core/TokenBroker")<
  TokenBroker,
  TokenBrokerService
>() {}

export { toGrantInfo } from "./internal/grantInfo.js"
export type { RefreshStep }

export const make = (
  options: TokenBrokerOptions = {}
): Effect.Effect<
  TokenBrokerService,
  never,
  GrantStore | KeyRing | AuthorizationServers | AccessTokenCache | TokenVerifier | Scope.Scope
> =>
  Effect.gen(function* () {
    const store = yield* GrantStore
    const keyRing = yield* KeyRing
    const servers = yield* AuthorizationServers
    const cache = yield* AccessTokenCache
    const verifier = yield* TokenVerifier
    const scope = yield* Effect.scope
    const clock = yield* Effect.clock

    const defaultTenant = options.tenant ?? DEFAULT_TENANT
    const earlyRefreshMs = Duration.toMillis(options.earlyRefresh ?? "60 seconds")
    const settings: RefreshSettings = {
      earlyRefreshMs,
      earlyRefreshShare: Math.min(1, Math.max(0.01, options.earlyRefreshShare ?? 0.25)),
      leaseTtl: Duration.decode(options.lease?.ttl ?? "30 seconds"),
      leaseWait: Duration.decode(options.lease?.wait ?? "20 seconds"),
      retryAttempts: options.retry?.attempts ?? 3,
      retryBaseDelayMs: Duration.toMillis(options.retry?.baseDelay ?? "200 millis"),
      retryDeadlineMs: Duration.toMillis(options.retry?.deadline ?? "10 seconds"),
      circuitFailureThreshold: options.circuit?.failureThreshold ?? 5,
      circuitOpenMs: Duration.toMillis(options.circuit?.openFor ?? "30 seconds"),
      maxConcurrentRefreshes: options.maxConcurrentRefreshes ?? 32,
      instanceId: options.instanceId ?? randomToken(12),
      onRefreshStep: options.onRefreshStep
    }
    const ctx: BrokerContext = {
      store,
      keyRing,
      servers,
      cache,
      verifier,
      clock,
      settings,
      protocol: makeRefreshProtocol(settings, {
        store,
        keyRing,
        servers,
        cache,
        grantLocks: yield* makeGrantLocks
      }),
      flights: makeSingleFlight(scope),
      defaultTenant,
      earlyRefreshMs,
      pendingTtlMs: Duration.toMillis(options.pendingTtl ?? "10 minutes"),
      sessionAudience:
        options.sessionAudience === undefined
          ? []
          : typeof options.sessionAudience === "string"
            ? [options.sessionAudience]
            : options.sessionAudience,
      rejectionsBeforeReconsent: options.rejectionsBeforeReconsent ?? 3,
      keyOf: grantKeyOf(defaultTenant)
    }
    return {
      ...makeBackgroundTokens(ctx),
      ...makeSessionExchange(ctx),
      ...makeConsentFlow(ctx),
      ...makeGrantAdministration(ctx)
    }
  })

/** The TokenBroker layer; needs a GrantStore, KeyRing, AuthorizationServers, AccessTokenCache and TokenVerifier. */
export const layer = (
  options: TokenBrokerOptions = {}
): Layer.Layer<
  TokenBroker,
  never,
  GrantStore | KeyRing | AuthorizationServers | AccessTokenCache | TokenVerifier
> => Layer.scoped(TokenBroker, make(options))
