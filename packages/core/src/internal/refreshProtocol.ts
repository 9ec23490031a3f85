import { Clock, Duration, Effect, Option, Random, Schedule } from "effect"
import { type AccessTokenCacheService, cacheKey, scopeVariant } from "../AccessTokenCache.js"
import type { AuthorizationServersService } from "../AuthorizationServer.js"
import {
  type BackgroundTokenError,
  ConsentRequired,
  type ConsentRequiredReason,
  type DecryptionFailed,
  InvalidRequest,
  type StorageUnavailable,
  UpstreamUnavailable
} from "../Errors.js"
import { type GrantKey, type GrantRecord, grantKeyString } from "../Grant.js"
import {
  type GrantStoreDriver,
  grantLeaseName,
  type Lease,
  type LeaseLost,
  LeaseTimeout,
  withLease
} from "../GrantStore.js"
import { aadFor, type KeyRingService } from "../KeyRing.js"
import * as Metrics from "../Metrics.js"
import { isSubset, same as sameScopes } from "../Scopes.js"
import type { IssuedToken } from "../TokenBroker.js"
import type { Rotation } from "./commitRotation.js"
import { count, observe } from "./metrics.js"
import { type GrantLocks, makeProviderCapacity } from "./refreshLocks.js"
import { makeRefreshUnderLease } from "./refreshUnderLease.js"
import { makeRefreshUpstream } from "./refreshUpstream.js"
import { servedScopes, sharedTokensOf } from "./sharedTokens.js"

export interface RefreshSettings {
  readonly earlyRefreshMs: number
  /** The early-refresh margin is at most this share of a token's issued lifetime. */
  readonly earlyRefreshShare: number
  readonly leaseTtl: Duration.Duration
  readonly leaseWait: Duration.Duration
  readonly retryAttempts: number
  readonly retryBaseDelayMs: number
  readonly retryDeadlineMs: number
  readonly circuitFailureThreshold: number
  readonly circuitOpenMs: number
  readonly maxConcurrentRefreshes: number
  readonly instanceId: string
  readonly onRefreshStep: ((step: RefreshStep, key: GrantKey) => Effect.Effect<void>) | undefined
}

/** The steps of one refresh under the lease, reported to `onRefreshStep` (tracing, fault injection). */
export type RefreshStep = "before_upstream" | "after_upstream" | "after_write"

export interface RefreshDeps {
  readonly store: GrantStoreDriver
  readonly keyRing: KeyRingService
  readonly servers: AuthorizationServersService
  readonly cache: AccessTokenCacheService
  readonly grantLocks: GrantLocks
}

/** What obtaining a token can fail with: the public background-token union, written once in Errors.ts. */
export type ObtainError = BackgroundTokenError

/**
 * The refresh protocol (DESIGN.md section 5) for one grant and scope set, after an in-process cache
 * miss and inside the in-process single flight:
 * read the grant -> use the shared token when another replica refreshed -> take the grant's lease ->
 * re-read -> mark the attempt -> refresh upstream -> compare-and-set the result.
 */
export const makeRefreshProtocol = (settings: RefreshSettings, deps: RefreshDeps) => {
  const { store, keyRing, servers, cache } = deps
  /** Rotations this process received but could not store yet, by grant: written first by the next refresh. */
  const unwritten = new Map<string, { readonly rotation: Rotation }>()
  const refreshUpstream = makeRefreshUpstream(settings)
  const leaseTtlMs = Duration.toMillis(settings.leaseTtl)
  let acquisitions = 0
  /** Lease owners are per acquisition: two acquisitions in one process exclude each other too. */
  const leaseOwner = () => {
    acquisitions += 1
    return `${settings.instanceId}/${acquisitions}`
  }

  const capacityOf = makeProviderCapacity(settings.maxConcurrentRefreshes)
  const withGrantLock = deps.grantLocks.withLock

  const consent = (key: GrantKey, reason: ConsentRequiredReason, detail: string) =>
    new ConsentRequired({
      subject: key.subject,
      provider: key.provider,
      reason,
      message: `The grant of "${key.subject}" for provider "${key.provider}" needs consent again: ${detail}`
    })

  /** Reads the grant and checks it can serve `scopes`. */
  const readUsable = (key: GrantKey, scopes: ReadonlyArray<string> | null, now: number) =>
    Effect.flatMap(store.get(key), (found) => {
      if (Option.isNone(found)) return Effect.fail(consent(key, "no_grant", "no grant is stored"))
      const record = found.value
      if (record.status === "reconsent_required") {
        return Effect.fail(
          consent(
            key,
            record.lastErrorCode === "rotation_lost" ||
              record.lastErrorCode === "access_token_rejected" ||
              record.lastErrorCode === "refused_without_error"
              ? record.lastErrorCode
              : "reconsent_required",
            `the grant was marked after "${record.lastErrorCode ?? "an earlier failure"}"`
          )
        )
      }
      if (record.refreshTokenExpiresAt !== null && record.refreshTokenExpiresAt <= now) {
        return Effect.fail(consent(key, "refresh_token_expired", "the refresh token's lifetime has ended"))
      }
      if (scopes !== null && !isSubset(scopes, record.scopes)) {
        return Effect.fail(
          consent(
            key,
            "scope_not_granted",
            `asked scopes are not all granted (granted: ${record.scopes.join(" ")})`
          )
        )
      }
      return Effect.succeed(record)
    })

  /**
   * The early-refresh margin of a token that lived `lifetimeMs` when issued: the configured margin, but
   * never more than a share of the lifetime (a 60 s token is not due the moment it arrives). `jitter`
   * (0..1) spreads the refreshes of many grants.
   */
  const marginFor = (lifetimeMs: number | null, jitter = 0) => {
    const base = settings.earlyRefreshMs * (1 + 0.25 * jitter)
    return lifetimeMs === null ? base : Math.min(base, lifetimeMs * settings.earlyRefreshShare)
  }

  /** The issued lifetime of the grant's last access token, remembered in the record. */
  const lifetimeOf = (record: GrantRecord): number | null =>
    record.accessToken === null || record.lastRefreshedAt === null
      ? null
      : Math.max(0, record.accessToken.expiresAt - record.lastRefreshedAt)

  /** The access token stored with the grant, when it matches the scopes, is not due and lives long enough. */
  const sharedToken = (
    key: GrantKey,
    record: GrantRecord,
    scopes: ReadonlyArray<string> | null,
    now: number,
    minRemainingMs: number
  ): Effect.Effect<Option.Option<IssuedToken>, DecryptionFailed | StorageUnavailable> => {
    const wanted = scopes ?? record.scopes
    const stored = sharedTokensOf(record).find((token) => sameScopes(servedScopes(token), wanted))
    if (stored === undefined || stored.expiresAt - now < minRemainingMs) return Effect.succeed(Option.none())
    return decrypt(stored.envelope, aadFor(key, "access_token")).pipe(
      Effect.map((token) =>
        Option.some<IssuedToken>({
          accessToken: token,
          tokenType: "Bearer",
          expiresAt: stored.expiresAt,
          scopes: stored.scopes,
          source: "store"
        })
      )
    )
  }
  const dueMargin = (record: GrantRecord, minTtlMs: number) =>
    Math.max(marginFor(lifetimeOf(record)), minTtlMs)

  const step = (name: RefreshStep, key: GrantKey) =>
    settings.onRefreshStep === undefined ? Effect.void : settings.onRefreshStep(name, key)

  const decrypt = (envelope: string, aad: string) =>
    keyRing
      .decrypt(envelope, aad)
      .pipe(
        Effect.tapError((error) =>
          error._tag === "DecryptionFailed"
            ? count(Metrics.decryptFailures, { kid: error.kid ?? "unknown" })
            : Effect.void
        )
      )

  /**
   * Caches a token until its early refresh is due (jittered from its issued lifetime, by Effect's Random).
   * Runs when a token is cached, never on a cache hit.
   */
  const remember = (
    key: GrantKey,
    scopes: ReadonlyArray<string> | null,
    token: IssuedToken,
    lifetimeMs: number | null
  ) =>
    Effect.flatMap(Random.next, (jitter) =>
      cache.set(
        grantKeyString(key),
        cacheKey(grantKeyString(key), scopes, null),
        {
          accessToken: token.accessToken,
          expiresAt: token.expiresAt,
          scopes: token.scopes,
          refreshAt: token.expiresAt - marginFor(lifetimeMs, jitter)
        },
        { tenant: key.tenant, subject: key.subject, provider: key.provider, variant: scopeVariant(scopes) }
      )
    )

  /** compare-and-set of bookkeeping (the marker, a failure), retried on storage failures a few times. */
  const writeFenced = (key: GrantKey, expectedVersion: number, next: GrantRecord) =>
    store.compareAndSet(key, expectedVersion, next).pipe(
      Effect.retry({ times: 4, schedule: exponentialJittered(50) }),
      Effect.tap((result) =>
        result === "conflict" ? count(Metrics.casConflicts, { provider: key.provider }) : Effect.void
      )
    )

  const refreshUnderLease = makeRefreshUnderLease({
    leaseTtlMs,
    store,
    keyRing,
    cache,
    unwritten,
    refreshUpstream,
    readUsable,
    sharedToken,
    dueMargin,
    lifetimeOf,
    decrypt,
    writeFenced,
    step,
    consent
  })

  /** A still-valid token (cache or store) to serve while the provider is unavailable. */
  const fallback = (key: GrantKey, scopes: ReadonlyArray<string> | null, minTtlMs: number) =>
    Effect.gen(function* () {
      const now = yield* Clock.currentTimeMillis
      // a token served while the provider or the store is down keeps at least 5 s of life: one with less
      // may be expired by the time the caller uses it (the chaos suite's serve check caught tokens that
      // expired 30-250 ms before the worker had them with a 1 s floor, and 5-675 ms on a machine at load 30)
      const floor = Math.max(minTtlMs, FALLBACK_MIN_LIFE_MS)
      const cached = cache.peek(cacheKey(grantKeyString(key), scopes, null), now, floor)
      if (cached !== undefined) {
        return Option.some<Obtained>({
          token: {
            accessToken: cached.accessToken,
            expiresAt: cached.expiresAt,
            scopes: cached.scopes,
            tokenType: "Bearer",
            source: "cache"
          },
          lifetimeMs: null
        })
      }
      const record = yield* store.get(key)
      if (Option.isNone(record)) return Option.none<Obtained>()
      const shared = yield* sharedToken(key, record.value, scopes, now, floor)
      return Option.map(shared, (token) => ({ token, lifetimeMs: lifetimeOf(record.value) }))
    }).pipe(Effect.orElseSucceed(() => Option.none<Obtained>()))

  /**
   * A token for the grant: from the store when another replica refreshed, else refreshed under the
   * grant's lease. `force` refreshes whatever is stored (explicit rotation). Run it admitted by
   * `admission(key.provider)` (the single flight's admission): it does not take a slot of the cap itself.
   */
  const obtain = (
    key: GrantKey,
    scopes: ReadonlyArray<string> | null,
    minTtlMs: number,
    force: boolean
  ): Effect.Effect<IssuedToken, ObtainError> =>
    Effect.gen(function* () {
      const client = yield* servers.get(key.provider)
      const fresh = Effect.gen(function* () {
        const now = yield* Clock.currentTimeMillis
        const record = yield* readUsable(key, scopes, now)
        const lifetime = lifetimeOf(record)
        if (!force && lifetime !== null && minTtlMs > lifetime + LIFETIME_SLACK_MS) {
          // The provider's tokens never live that long: refused before any upstream call.
          return yield* impossibleMinTtl(key, lifetime)
        }
        if (!force) {
          const shared = yield* sharedToken(key, record, scopes, now, dueMargin(record, minTtlMs))
          if (Option.isSome(shared)) {
            yield* count(Metrics.tokenRequests, { provider: key.provider, result: "shared" })
            return { token: shared.value, lifetimeMs: lifetime }
          }
        }
        const waitStarted = yield* Clock.currentTimeMillis
        const underLease = (lease: Lease) =>
          Effect.gen(function* () {
            const acquired = yield* Clock.currentTimeMillis
            yield* observe(Metrics.leaseWait, { provider: key.provider }, (acquired - waitStarted) / 1000)
            return yield* refreshUnderLease({ client, key, scopes, minTtlMs, force, lease })
          })
        // A slot of the provider's cap on concurrent refreshes was taken before this ran (the single
        // flight's admission, `admission(provider)`); then one refresh per grant at a time in this process;
        // only then the grant's lease. Grants queued behind the cap hold no lease, no fiber and cost the
        // store nothing while they wait (a storm of expiring grants stays cheap).
        return yield* withGrantLock(
          grantKeyString(key),
          withLease(
            store,
            grantLeaseName(key),
            leaseOwner(),
            { ttl: settings.leaseTtl, wait: settings.leaseWait },
            underLease
          )
        ).pipe(
          Effect.catchIf(
            (e): e is LeaseTimeout | LeaseLost => e instanceof LeaseTimeout || e._tag === "LeaseLost",
            (e) =>
              Effect.gen(function* () {
                if (e._tag === "LeaseLost") yield* count(Metrics.leaseLost, { provider: key.provider })
                return yield* new UpstreamUnavailable({
                  provider: key.provider,
                  reason: "lease_timeout",
                  message:
                    e._tag === "LeaseLost"
                      ? "Lost the refresh lease of this grant while refreshing; try again"
                      : "Another process is refreshing this grant and did not finish in time; try again"
                })
              })
          )
        )
      })
      // Fail closed (F5): when the provider or the store is unavailable, a still-valid token is served;
      // otherwise the retryable error.
      const obtained = yield* fresh.pipe(
        Effect.catchIf(
          (e): e is UpstreamUnavailable | StorageUnavailable =>
            e._tag === "UpstreamUnavailable" || e._tag === "StorageUnavailable",
          (error) =>
            Effect.flatMap(fallback(key, scopes, minTtlMs), (found) =>
              Option.isSome(found) ? Effect.succeed(found.value) : Effect.fail(error)
            )
        )
      )
      const { token } = obtained
      const served = yield* Clock.currentTimeMillis
      yield* remember(key, scopes, token, obtained.lifetimeMs)
      if (token.expiresAt - served < minTtlMs) {
        // A refreshed token that lives less than asked is never served (it stays cached for others).
        return yield* impossibleMinTtl(key, obtained.lifetimeMs ?? token.expiresAt - served)
      }
      yield* observe(
        Metrics.servedTokenLifetime,
        { provider: key.provider },
        (token.expiresAt - served) / 1000
      )
      return token
    }).pipe(
      Effect.tapError((error) =>
        count(Metrics.tokenRequests, {
          provider: key.provider,
          result: error._tag === "ConsentRequired" ? "consent_required" : "error"
        })
      ),
      Effect.withSpan("TokenBroker.refresh", { attributes: { provider: key.provider, force } })
    )

  return {
    obtain,
    /** The provider's cap on concurrent refreshes, for the single flight that runs `obtain`. */
    admission: capacityOf,
    readUsable,
    decrypt,
    remember,
    withGrantLock,
    leaseOwner,
    lifetimeOf
  }
}

/**
 * A remembered lifetime is measured from when the answer was recorded, a little after it arrived, and
 * `expires_in` counts whole seconds: a minTtl within a second of it may still be met.
 */
const LIFETIME_SLACK_MS = 1_000

/** The least life left in a still-valid token served as a fallback (provider or store down). */
const FALLBACK_MIN_LIFE_MS = 5_000

/** A token and the lifetime it was issued with (null when unknown). */
export interface Obtained {
  readonly token: IssuedToken
  readonly lifetimeMs: number | null
}

const impossibleMinTtl = (key: GrantKey, lifetimeMs: number) =>
  Effect.fail(
    new InvalidRequest({
      field: "minTtl",
      message: `Provider "${key.provider}" issues access tokens living ${Math.round(lifetimeMs / 1000)} s, less than the minimum asked`
    })
  )

const exponentialJittered = (baseMs: number) =>
  Schedule.exponential(Duration.millis(baseMs)).pipe(Schedule.jittered)
