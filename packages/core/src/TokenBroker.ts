import { Clock, Context, Duration, Effect, Layer, Option, Redacted, type Scope } from "effect"
import { AccessTokenCache, cacheKey, scopeVariant } from "./AccessTokenCache.js"
import { AuthorizationServers } from "./AuthorizationServer.js"
import {
  type AudienceMismatch,
  AuthorizationNotPending,
  ConsentRequired,
  type DecryptionFailed,
  type IdentityMismatch,
  InvalidRequest,
  InvalidSubjectToken,
  type ProviderNotFound,
  type StorageUnavailable,
  UpstreamRejected,
  type UpstreamUnavailable
} from "./Errors.js"
import type { GrantFilter, GrantKey, GrantRecord, GrantStatus } from "./Grant.js"
import { grantKeyString } from "./Grant.js"
import { GrantStore, grantLeaseName, type LeaseLost, type LeaseTimeout, withLease } from "./GrantStore.js"
import { checkBinding, consentedIdentity, discardIssued } from "./internal/consentIdentity.js"
import { decodeCursor, encodeCursor } from "./internal/cursor.js"
import { count, labelsBy } from "./internal/metrics.js"
import { randomToken, s256, sha256 } from "./internal/random.js"
import { makeRefreshProtocol, type RefreshSettings, type RefreshStep } from "./internal/refreshProtocol.js"
import { makeReportRejected } from "./internal/reportRejected.js"
import { revokeAtProvider } from "./internal/revokeUpstream.js"
import { normalizeScopes, requestedScopes, sortScopes } from "./internal/scopes.js"
import { makeSingleFlight } from "./internal/singleFlight.js"
import { logUpstreamFailure } from "./internal/upstreamLog.js"
import { aadFor, KeyRing } from "./KeyRing.js"
import * as Metrics from "./Metrics.js"
import { expectsIdToken, offlineScopeOf, type ProviderConfig } from "./Provider.js"
import { TokenVerifier } from "./TokenVerifier.js"

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

export interface RevokeResult {
  /** A grant was stored and is now removed. */
  readonly removed: boolean
  /** What the provider said to the RFC 7009 call. */
  readonly upstream: "revoked" | "failed" | "not_supported" | "not_attempted"
  readonly upstreamError?: { readonly code: string; readonly message: string } | undefined
  /**
   * The grant's current (unexpired) access tokens, revoked too with `token_type_hint=access_token`:
   * "revoked" (every one), "none" (no current one), "not_supported" (the provider answered
   * `unsupported_token_type`, or has no revocation endpoint), "failed", "not_attempted" (no grant).
   */
  readonly accessTokens: "revoked" | "none" | "not_supported" | "failed" | "not_attempted"
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
  ) => Effect.Effect<
    IssuedToken,
    | ConsentRequired
    | UpstreamUnavailable
    | UpstreamRejected
    | ProviderNotFound
    | StorageUnavailable
    | DecryptionFailed
    | InvalidRequest
  >
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
   * The upstream API refused (401) an access token the broker handed out. The token is dropped from the
   * cache and the store, so the next call refreshes; the newest token of a grant refused after
   * `rejectionsBeforeReconsent` refreshes in a row marks the grant `reconsent_required`. Answers the grant
   * after the report (none when no grant is stored).
   */
  readonly reportRejected: (
    request: RejectedTokenReport
  ) => Effect.Effect<Option.Option<GrantInfo>, StorageUnavailable | InvalidRequest>
  /** Refreshes now, whatever the cache says: rotates the refresh token where the provider rotates. */
  readonly rotateRefreshToken: (
    ref: GrantRef
  ) => Effect.Effect<
    GrantInfo,
    | ConsentRequired
    | UpstreamUnavailable
    | UpstreamRejected
    | ProviderNotFound
    | StorageUnavailable
    | DecryptionFailed
    | InvalidRequest
  >
}

export class TokenBroker extends Context.Tag("@token-broker/core/TokenBroker")<
  TokenBroker,
  TokenBrokerService
>() {}

export type { RefreshStep }

export const toGrantInfo = (record: GrantRecord): GrantInfo => ({
  tenant: record.tenant,
  subject: record.subject,
  provider: record.provider,
  version: record.version,
  status: record.status,
  scopes: record.scopes,
  identity: record.identity,
  refreshTokenExpiresAt: record.refreshTokenExpiresAt,
  accessTokenExpiresAt: record.accessToken?.expiresAt ?? null,
  createdAt: record.createdAt,
  updatedAt: record.updatedAt,
  lastRefreshedAt: record.lastRefreshedAt,
  failureCount: record.failureCount,
  lastErrorCode: record.lastErrorCode
})

/** What a consent asks beside the requested scopes: `openid` where an ID token comes back, the offline scope. */
const consentScopes = (provider: ProviderConfig): ReadonlyArray<string> => {
  const offline = offlineScopeOf(provider)
  return [...(expectsIdToken(provider) ? ["openid"] : []), ...(offline === null ? [] : [offline])]
}

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

    const defaultTenant = options.tenant ?? "default"
    const earlyRefreshMs = Duration.toMillis(options.earlyRefresh ?? "60 seconds")
    const pendingTtlMs = Duration.toMillis(options.pendingTtl ?? "10 minutes")
    const sessionAudience =
      options.sessionAudience === undefined
        ? []
        : typeof options.sessionAudience === "string"
          ? [options.sessionAudience]
          : options.sessionAudience

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
    const protocol = makeRefreshProtocol(settings, { store, keyRing, servers, cache })
    const flights = makeSingleFlight(scope)
    const reportRejection = makeReportRejected(
      { store, keyRing, cache },
      Math.max(1, options.rejectionsBeforeReconsent ?? 3)
    )

    const keyOf = (ref: GrantRef): Effect.Effect<GrantKey, InvalidRequest> => {
      const tenant = ref.tenant ?? defaultTenant
      if (tenant.length === 0 || tenant.length > 256) {
        return Effect.fail(
          new InvalidRequest({ field: "tenant", message: "tenant must be 1-256 characters" })
        )
      }
      if (ref.subject.length === 0 || ref.subject.length > 256) {
        return Effect.fail(
          new InvalidRequest({ field: "subject", message: "subject must be 1-256 characters" })
        )
      }
      if (!PROVIDER_ID.test(ref.provider)) {
        return Effect.fail(
          new InvalidRequest({
            field: "provider",
            message: "provider must be 1-64 characters of [A-Za-z0-9._-]"
          })
        )
      }
      return Effect.succeed({ tenant, subject: ref.subject, provider: ref.provider })
    }

    /**
     * Step 1, the in-process cache: synchronous, no lock, no I/O. A request that fails validation was
     * never cached, so validation waits for the miss path.
     */
    const hitLabels = labelsBy({ result: "hit" }, "provider")
    const cachedToken = (request: BackgroundTokenRequest): IssuedToken | undefined => {
      // The entry's own `refreshAt` carries the early-refresh margin; the caller's minimum is checked here.
      const hit = cache.lookupSlot(
        request.tenant ?? defaultTenant,
        request.subject,
        request.provider,
        request.scopes === undefined ? "*" : scopeVariant(sortScopes(request.scopes)),
        clock.unsafeCurrentTimeMillis(),
        request.minTtl === undefined ? 0 : Duration.toMillis(request.minTtl)
      )
      if (hit === undefined) return undefined
      Metrics.tokenRequests.unsafeUpdate(1, hitLabels(request.provider))
      return {
        accessToken: hit.accessToken,
        tokenType: "Bearer",
        expiresAt: hit.expiresAt,
        scopes: hit.scopes,
        source: "cache"
      }
    }

    const backgroundToken: TokenBrokerService["backgroundToken"] = (request) =>
      Effect.suspend(() => {
        const hit = cachedToken(request)
        if (hit !== undefined) return Effect.succeed(hit)
        return Effect.gen(function* () {
          const key = yield* keyOf(request)
          const scopes =
            request.scopes === undefined ? null : yield* requestedScopes(request.scopes, "scopes")
          const minTtlMs = request.minTtl === undefined ? 0 : Duration.toMillis(request.minTtl)
          // Step 2, the in-process single flight: concurrent callers share one attempt.
          return yield* flights.run(
            `${cacheKey(grantKeyString(key), scopes, null)}\u0000${minTtlMs}`,
            protocol.obtain(key, scopes, minTtlMs, false),
            count(Metrics.tokenRequests, { provider: key.provider, result: "coalesced" }),
            protocol.admission(key.provider)
          )
        })
      })

    const sessionToken: TokenBrokerService["sessionToken"] = (request) =>
      Effect.gen(function* () {
        const client = yield* servers.get(request.provider)
        if (client.config.tokenExchange === undefined) {
          return yield* new InvalidRequest({
            field: "provider",
            message: `Provider "${request.provider}" is not configured for token exchange (tokenExchange)`
          })
        }
        const scopes = request.scopes === undefined ? [] : yield* requestedScopes(request.scopes, "scopes")
        const audience = request.audience ?? client.config.resource
        const verified = yield* verifier.verify(request.subjectToken, { audience: sessionAudience })
        const sessionId = `session:${request.provider}:${sha256(Redacted.value(request.subjectToken))}`
        const tokenKey = cacheKey(sessionId, scopes, audience ?? null)
        const now = yield* Clock.currentTimeMillis
        const hit = cache.lookup(tokenKey, now, earlyRefreshMs)
        if (hit !== undefined) {
          yield* count(Metrics.tokenExchanges, { provider: request.provider, outcome: "cached" })
          return { ...hit, tokenType: "Bearer" as const, source: "exchange" as const }
        }
        const exchange = Effect.gen(function* () {
          const actorToken =
            client.config.tokenExchange?.actorToken === true
              ? yield* actorTokenOf(request.provider)
              : undefined
          const set = yield* client
            .exchange({
              subjectToken: request.subjectToken,
              scopes,
              audience,
              resource: client.config.resource,
              actorToken
            })
            .pipe(
              Effect.tapError((e) => logUpstreamFailure("token exchange", { provider: request.provider }, e)),
              Effect.catchTag("InvalidGrant", (e) =>
                Effect.fail(
                  new InvalidSubjectToken({
                    reason: "inactive",
                    message: `Provider "${request.provider}" refused the subject token${e.errorDescription ? ` (${e.errorDescription})` : ""}`
                  })
                )
              )
            )
          const arrived = yield* Clock.currentTimeMillis
          // Cached no longer than either token lives; never persisted.
          const expiresAt = Math.min(set.expiresAt ?? arrived + 60_000, verified.expiresAt)
          const token: IssuedToken = {
            accessToken: set.accessToken,
            tokenType: "Bearer",
            expiresAt,
            scopes: set.scopes ?? scopes,
            source: "exchange"
          }
          yield* cache.set(sessionId, tokenKey, {
            accessToken: token.accessToken,
            expiresAt,
            scopes: token.scopes
          })
          yield* count(Metrics.tokenExchanges, { provider: request.provider, outcome: "success" })
          return token
        })
        return yield* flights.run(tokenKey, exchange, Effect.void)
      }).pipe(
        Effect.tapError((error) =>
          count(Metrics.tokenExchanges, { provider: request.provider, outcome: error.code })
        ),
        Effect.withSpan("TokenBroker.sessionToken", { attributes: { provider: request.provider } })
      )

    /** client_credentials tokens used as RFC 8693 actor tokens, cached per provider. */
    const actorTokenOf = (provider: string) =>
      Effect.gen(function* () {
        const client = yield* servers.get(provider)
        const actorKey = cacheKey(`actor:${provider}`, [], null)
        const now = yield* Clock.currentTimeMillis
        const hit = cache.lookup(actorKey, now, earlyRefreshMs)
        if (hit !== undefined) return hit.accessToken
        const set = yield* client.clientCredentials({ scopes: [] }).pipe(
          Effect.tapError((e) => logUpstreamFailure("client_credentials (actor token)", { provider }, e)),
          Effect.catchTag("InvalidGrant", () =>
            Effect.fail(
              new UpstreamRejected({
                provider,
                error: "invalid_grant",
                message: `Provider "${provider}" refused the client_credentials grant for the actor token`
              })
            )
          )
        )
        const expiresAt = set.expiresAt ?? now + 60_000
        yield* cache.set(`actor:${provider}`, actorKey, {
          accessToken: set.accessToken,
          expiresAt,
          scopes: []
        })
        return set.accessToken
      })

    const startAuthorization: TokenBrokerService["startAuthorization"] = (request) =>
      Effect.gen(function* () {
        const key = yield* keyOf(request)
        const client = yield* servers.get(key.provider)
        const asked =
          request.scopes === undefined
            ? yield* normalizeScopes(client.config.defaultScopes, "scopes")
            : yield* requestedScopes(request.scopes, "scopes")
        const scopes = sortScopes([...asked, ...consentScopes(client.config)])
        const state = randomToken(32)
        const nonce = randomToken(32)
        const verifierText = randomToken(48)
        const stateHash = sha256(state)
        const now = yield* Clock.currentTimeMillis
        const expiresAt = now + pendingTtlMs
        const url = yield* client.authorizationUrl({
          state,
          nonce,
          codeChallenge: s256(verifierText),
          scopes,
          redirectUri: client.config.redirectUri,
          resource: client.config.resource,
          // oidc-provider and others drop offline access unless consent is asked again
          ...(client.config.offlineAccessScope === null ? {} : { prompt: "consent" })
        })
        yield* store.putPending(stateHash, {
          ...key,
          scopes,
          redirectUri: client.config.redirectUri,
          returnTo: request.returnTo ?? null,
          codeVerifier: yield* keyRing.encrypt(
            Redacted.make(verifierText),
            pendingAad(stateHash, "code_verifier")
          ),
          nonce: yield* keyRing.encrypt(Redacted.make(nonce), pendingAad(stateHash, "nonce")),
          createdAt: now,
          expiresAt
        })
        return { authorizationUrl: url, state: Redacted.make(state), expiresAt }
      }).pipe(
        Effect.withSpan("TokenBroker.startAuthorization", { attributes: { provider: request.provider } })
      )

    const completeAuthorization: TokenBrokerService["completeAuthorization"] = (callback) =>
      Effect.gen(function* () {
        const params =
          callback instanceof URL
            ? callback.searchParams
            : callback instanceof URLSearchParams
              ? callback
              : new URLSearchParams(callback as Record<string, string>)
        const state = params.get("state")
        if (state === null || state.length === 0) {
          return yield* new AuthorizationNotPending({ message: "The callback carries no state parameter" })
        }
        const stateHash = sha256(state)
        const found = yield* store.takePending(stateHash)
        if (Option.isNone(found)) {
          return yield* new AuthorizationNotPending({
            message: "This consent is unknown, was already completed, or expired; start it again"
          })
        }
        const pending = found.value
        const key: GrantKey = { tenant: pending.tenant, subject: pending.subject, provider: pending.provider }
        const client = yield* servers.get(pending.provider)
        const upstreamError = params.get("error")
        if (upstreamError !== null) {
          // An error answer does not use up the consent: it stays pending until it expires, so the user
          // can go back and allow, and a link carrying an error cannot cancel a consent in progress.
          yield* store.putPending(stateHash, pending)
          return yield* new UpstreamRejected({
            provider: pending.provider,
            error: upstreamError,
            errorDescription: params.get("error_description") ?? undefined,
            message: `Provider "${pending.provider}" did not grant consent: ${upstreamError}`
          })
        }
        // A consent started under a key retired since (keys rotate, then retire, within pendingTtl) can
        // never be finished: the user is asked to start it again, not shown a server error.
        const retiredKey = (
          error: DecryptionFailed
        ): Effect.Effect<never, DecryptionFailed | AuthorizationNotPending> =>
          error.reason === "unknown_key"
            ? Effect.fail(
                new AuthorizationNotPending({
                  message:
                    "This consent was started under an encryption key that has been retired since; start it again"
                })
              )
            : Effect.fail(error)
        const codeVerifier = yield* keyRing
          .decrypt(pending.codeVerifier, pendingAad(stateHash, "code_verifier"))
          .pipe(Effect.catchTag("DecryptionFailed", retiredKey))
        const nonce = yield* keyRing
          .decrypt(pending.nonce, pendingAad(stateHash, "nonce"))
          .pipe(Effect.catchTag("DecryptionFailed", retiredKey))
        const callbackUrl = new URL(pending.redirectUri)
        for (const [name, value] of params) callbackUrl.searchParams.set(name, value)
        const set = yield* client
          .exchangeCode({
            callbackUrl,
            expectedState: state,
            codeVerifier,
            nonce: Redacted.value(nonce),
            redirectUri: pending.redirectUri,
            resource: client.config.resource
          })
          .pipe(
            Effect.tapError((e) =>
              logUpstreamFailure(
                "code exchange",
                {
                  provider: pending.provider,
                  grant: grantKeyString({
                    tenant: pending.tenant,
                    subject: pending.subject,
                    provider: pending.provider
                  })
                },
                e
              )
            ),
            Effect.catchTag("InvalidGrant", (e) =>
              Effect.fail(
                new UpstreamRejected({
                  provider: pending.provider,
                  error: "invalid_grant",
                  errorDescription: e.errorDescription,
                  message: `Provider "${pending.provider}" refused the authorization code`
                })
              )
            )
          )
        // Whatever refuses the consent from here on first revokes what the provider just issued.
        const refuse = <E extends { readonly message: string }>(error: E) =>
          Effect.flatMap(discardIssued(client, set), (outcome) =>
            Effect.fail(Object.assign(error, { message: `${error.message}; ${outcome}` }))
          )
        const consented = yield* consentedIdentity(client, set).pipe(Effect.catchAll(refuse))
        yield* checkBinding(client, pending.subject, consented).pipe(Effect.catchAll(refuse))
        const identity = consented === null ? null : { issuer: consented.issuer, subject: consented.subject }
        if (set.refreshToken === null) {
          return yield* refuse(
            new UpstreamRejected({
              provider: pending.provider,
              error: "no_refresh_token",
              message: `Provider "${pending.provider}" issued no refresh token; ${
                client.config.offlineAccessScope === null
                  ? "it issues none to this client (check the app's refresh-token setting at the provider)"
                  : `${client.config.offlineAccessScope ?? "offline_access"} was not granted`
              }`
            })
          )
        }
        const now = yield* Clock.currentTimeMillis
        const grantedScopes = set.scopes ?? pending.scopes
        const fresh = {
          ...key,
          status: "active" as const,
          refreshToken: yield* keyRing.encrypt(set.refreshToken, aadFor(key, "refresh_token")),
          accessToken: {
            envelope: yield* keyRing.encrypt(set.accessToken, aadFor(key, "access_token")),
            expiresAt: set.expiresAt ?? now + 5 * 60_000,
            scopes: grantedScopes,
            audience: client.config.resource ?? null
          },
          scopes: grantedScopes,
          refreshTokenExpiresAt:
            set.refreshExpiresAt ??
            (client.config.refreshTokenLifetime === undefined
              ? null
              : now + Duration.toMillis(client.config.refreshTokenLifetime)),
          identity,
          updatedAt: now,
          lastRefreshedAt: now,
          lastUsedAt: null,
          failureCount: 0,
          lastErrorCode: null,
          refreshStartedAt: null
        }
        const stored = yield* storeGrant(key, fresh, now)
        yield* cache.invalidateGrant(grantKeyString(key))
        return { grant: toGrantInfo(stored), returnTo: pending.returnTo }
      }).pipe(Effect.withSpan("TokenBroker.completeAuthorization"))

    /** Inserts a new grant, or replaces the stored one under compare-and-set (new version). */
    const storeGrant = (
      key: GrantKey,
      fresh: Omit<GrantRecord, "version" | "createdAt">,
      now: number
    ): Effect.Effect<GrantRecord, StorageUnavailable> =>
      Effect.gen(function* () {
        while (true) {
          const existing = yield* store.get(key)
          if (Option.isNone(existing)) {
            const record: GrantRecord = { ...fresh, version: 1, createdAt: now }
            if ((yield* store.insert(record)) !== "ok") continue
            // a key that held a grant before is stored above its old versions: learn the one written
            // (none: revoked meanwhile; the record is what was written, not resurrected)
            return Option.getOrElse(yield* store.get(key), () => record)
          }
          const record: GrantRecord = {
            ...fresh,
            version: existing.value.version + 1,
            createdAt: existing.value.createdAt
          }
          if ((yield* store.compareAndSet(key, existing.value.version, record)) === "ok") return record
        }
      })

    const grantStatus: TokenBrokerService["grantStatus"] = (ref) =>
      Effect.map(
        store.get({ tenant: ref.tenant ?? defaultTenant, subject: ref.subject, provider: ref.provider }),
        Option.map(toGrantInfo)
      ).pipe(Effect.withSpan("TokenBroker.grantStatus", { attributes: { provider: ref.provider } }))

    const listGrants: TokenBrokerService["listGrants"] = (request) =>
      Effect.gen(function* () {
        const limit = request.limit ?? 100
        if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
          return yield* new InvalidRequest({
            field: "limit",
            message: "limit must be an integer from 1 to 1000"
          })
        }
        let after: GrantKey | null = null
        if (request.cursor !== undefined && request.cursor !== null) {
          after = decodeCursor(request.cursor)
          if (after === null) {
            return yield* new InvalidRequest({
              field: "cursor",
              message: "cursor is not one this broker returned"
            })
          }
        }
        const rows = yield* store.list(request.filter ?? {}, after, limit + 1)
        const items = rows.slice(0, limit)
        const last = items[items.length - 1]
        return {
          items: items.map(toGrantInfo),
          nextCursor: rows.length > limit && last !== undefined ? encodeCursor(last) : null
        }
      }).pipe(Effect.withSpan("TokenBroker.listGrants"))

    const revoke: TokenBrokerService["revoke"] = (ref) =>
      Effect.gen(function* () {
        const key: GrantKey = {
          tenant: ref.tenant ?? defaultTenant,
          subject: ref.subject,
          provider: ref.provider
        }
        const grantId = grantKeyString(key)
        const revokeUnderLease = Effect.gen(function* () {
          const found = yield* store.get(key)
          if (Option.isNone(found)) {
            yield* cache.invalidateGrant(grantId)
            return {
              removed: false,
              upstream: "not_attempted" as const,
              accessTokens: "not_attempted" as const,
              revokedAtProvider: { refreshToken: false, accessTokens: 0 }
            }
          }
          // A grant that does not decrypt, or whose provider is gone, is still deleted: the upstream part
          // is reported failed.
          const upstream = yield* revokeAtProvider({ servers, keyRing }, key, found.value)
          // The grant goes locally whatever the provider said; a failure upstream is reported.
          const removed = yield* store.delete(key)
          yield* cache.invalidateGrant(grantId)
          return { removed, ...upstream }
        })
        // The grant lock first: a refresh of this grant in this process finishes (and stores its
        // successor) before the grant is revoked, so the newest refresh token is the one revoked.
        return yield* protocol.withGrantLock(
          grantId,
          withLease(
            store,
            grantLeaseName(key),
            protocol.leaseOwner(),
            { ttl: settings.leaseTtl, wait: settings.leaseWait },
            () => revokeUnderLease
          ).pipe(
            // Never blocked by a stuck refresh elsewhere: its later write finds no grant, serves nothing and
            // revokes the token it received.
            Effect.catchIf(
              (e): e is LeaseTimeout | LeaseLost => e._tag === "LeaseTimeout" || e._tag === "LeaseLost",
              () => revokeUnderLease
            )
          )
        )
      }).pipe(Effect.withSpan("TokenBroker.revoke", { attributes: { provider: ref.provider } }))

    const reportRejected: TokenBrokerService["reportRejected"] = (request) =>
      Effect.gen(function* () {
        const key = yield* keyOf(request)
        const outcome = yield* reportRejection(key, request.accessToken)
        return Option.map(outcome.grant, toGrantInfo)
      }).pipe(Effect.withSpan("TokenBroker.reportRejected", { attributes: { provider: request.provider } }))

    const rotateRefreshToken: TokenBrokerService["rotateRefreshToken"] = (ref) =>
      Effect.gen(function* () {
        const key = yield* keyOf(ref)
        yield* flights.run(
          `rotate\u0000${grantKeyString(key)}`,
          protocol.obtain(key, null, 0, true),
          Effect.void,
          protocol.admission(key.provider)
        )
        const stored = yield* store.get(key)
        return yield* Option.match(stored, {
          onNone: () =>
            Effect.fail(
              new ConsentRequired({
                subject: key.subject,
                provider: key.provider,
                reason: "no_grant",
                message: `The grant of "${key.subject}" for provider "${key.provider}" was removed`
              })
            ),
          onSome: (record) => Effect.succeed(toGrantInfo(record))
        })
      })

    return {
      backgroundToken,
      sessionToken,
      startAuthorization,
      completeAuthorization,
      grantStatus,
      listGrants,
      revoke,
      reportRejected,
      rotateRefreshToken,
      cachedToken
    }
  })

const PROVIDER_ID = /^[A-Za-z0-9._-]{1,64}$/

const pendingAad = (stateHash: string, field: string) =>
  JSON.stringify(["token-broker/v1/pending", stateHash, field])

/** The TokenBroker layer; needs a GrantStore, KeyRing, AuthorizationServers, AccessTokenCache and TokenVerifier. */
export const layer = (
  options: TokenBrokerOptions = {}
): Layer.Layer<
  TokenBroker,
  never,
  GrantStore | KeyRing | AuthorizationServers | AccessTokenCache | TokenVerifier
> => Layer.scoped(TokenBroker, make(options))
