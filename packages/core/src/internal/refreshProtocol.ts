import { Clock, Duration, Effect, Either, Option, Schedule } from "effect"
import { type AccessTokenCacheService, cacheKey } from "../AccessTokenCache.js"
import type { AuthorizationServersService, ProviderClient, TokenSet } from "../AuthorizationServer.js"
import {
  ConsentRequired,
  type ConsentRequiredReason,
  type DecryptionFailed,
  InvalidRequest,
  type ProviderNotFound,
  type StorageUnavailable,
  UpstreamRejected,
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
import type { IssuedToken } from "../TokenBroker.js"
import { type CommitOutcome, commitRotation, type Rotation } from "./commitRotation.js"
import { count, observe } from "./metrics.js"
import { makePermits, type Permits } from "./permits.js"
import { isNotProcessed, makeRefreshUpstream } from "./refreshUpstream.js"
import { isSubset, sameScopes } from "./scopes.js"

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
}

export type ObtainError =
  | ConsentRequired
  | UpstreamUnavailable
  | UpstreamRejected
  | ProviderNotFound
  | StorageUnavailable
  | DecryptionFailed
  | InvalidRequest

/** How often one call re-runs the protocol after losing a race (a CAS conflict or a rotated grant). */
const MAX_ROUNDS = 3

/**
 * The refresh protocol (DESIGN.md section 5) for one grant and scope set, after an in-process cache
 * miss and inside the in-process single flight:
 * read the grant -> use the shared token when another replica refreshed -> take the grant's lease ->
 * re-read -> mark the attempt -> refresh upstream -> compare-and-set the result.
 */
export const makeRefreshProtocol = (settings: RefreshSettings, deps: RefreshDeps) => {
  const { store, keyRing, servers, cache } = deps
  const capacity = new Map<string, Permits>()
  const grantLocks = new Map<string, { permits: Permits; users: number }>()
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

  const capacityOf = (provider: string) => {
    let permits = capacity.get(provider)
    if (permits === undefined) {
      permits = makePermits(settings.maxConcurrentRefreshes)
      capacity.set(provider, permits)
    }
    return permits
  }
  /** One refresh (or revocation) per grant at a time in this process, before the cluster-wide lease is asked. */
  const withGrantLock = <A, E>(grantId: string, effect: Effect.Effect<A, E>): Effect.Effect<A, E> =>
    Effect.acquireUseRelease(
      Effect.sync(() => {
        let lock = grantLocks.get(grantId)
        if (lock === undefined) {
          lock = { permits: makePermits(1), users: 0 }
          grantLocks.set(grantId, lock)
        }
        lock.users += 1
        return lock
      }),
      (lock) => lock.permits.withPermit(effect),
      (lock) =>
        Effect.sync(() => {
          lock.users -= 1
          if (lock.users === 0) grantLocks.delete(grantId)
        })
    )

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
            record.lastErrorCode === "rotation_lost" || record.lastErrorCode === "access_token_rejected"
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
    const stored = record.accessToken
    if (stored === null || stored.expiresAt - now < minRemainingMs) return Effect.succeed(Option.none())
    if (!sameScopes(stored.scopes, scopes ?? record.scopes)) return Effect.succeed(Option.none())
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

  /** Caches a token until its early refresh is due (jittered from its issued lifetime). */
  const remember = (
    key: GrantKey,
    scopes: ReadonlyArray<string> | null,
    token: IssuedToken,
    lifetimeMs: number | null
  ) =>
    cache.set(grantKeyString(key), cacheKey(grantKeyString(key), scopes, null), {
      accessToken: token.accessToken,
      expiresAt: token.expiresAt,
      scopes: token.scopes,
      refreshAt: token.expiresAt - marginFor(lifetimeMs, Math.random())
    })

  /** compare-and-set of bookkeeping (the marker, a failure), retried on storage failures a few times. */
  const writeFenced = (key: GrantKey, expectedVersion: number, next: GrantRecord) =>
    store.compareAndSet(key, expectedVersion, next).pipe(
      Effect.retry({ times: 4, schedule: exponentialJittered(50) }),
      Effect.tap((result) =>
        result === "conflict" ? count(Metrics.casConflicts, { provider: key.provider }) : Effect.void
      )
    )

  const logOutcome = (key: GrantKey, outcome: string, message: string) =>
    Effect.logWarning(message).pipe(
      Effect.annotateLogs({ grant: grantKeyString(key), provider: key.provider, outcome })
    )

  /**
   * Acts on where a rotation's write ended. Every path out of an answered refresh goes through here:
   * the successor is stored, or handed to the winner, or revoked with its deleted grant, or kept in
   * memory and reported.
   */
  const settle = (
    client: ProviderClient,
    key: GrantKey,
    rotation: Rotation,
    outcome: CommitOutcome
  ): Effect.Effect<"written" | "superseded" | "unwritten", ConsentRequired> =>
    Effect.gen(function* () {
      const grantId = grantKeyString(key)
      switch (outcome) {
        case "written":
          unwritten.delete(grantId)
          return "written" as const
        case "superseded":
          unwritten.delete(grantId)
          yield* count(Metrics.refreshes, { provider: key.provider, outcome: "race_recovered" })
          return "superseded" as const
        case "removed": {
          unwritten.delete(grantId)
          // Revoked while this refresh ran: nothing is cached or served, and the successor is revoked too.
          yield* cache.invalidateGrant(grantId)
          if (rotation.successor !== null) {
            yield* client
              .revoke({ token: rotation.successor, tokenTypeHint: "refresh_token" })
              .pipe(Effect.ignore)
          }
          yield* count(Metrics.refreshes, { provider: key.provider, outcome: "grant_removed" })
          yield* logOutcome(
            key,
            "grant_removed",
            "grant removed during its refresh; the new refresh token was revoked"
          )
          return yield* consent(key, "no_grant", "the grant was removed while it was being refreshed")
        }
        case "unwritten":
          unwritten.set(grantId, { rotation })
          yield* count(Metrics.refreshes, { provider: key.provider, outcome: "rotation_unwritten" })
          yield* Effect.logError(
            "rotated refresh token could not be stored while the lease was held; kept in memory for the next refresh"
          ).pipe(
            Effect.annotateLogs({ grant: grantId, provider: key.provider, outcome: "rotation_unwritten" })
          )
          return "unwritten" as const
      }
    })

  /** The refresh under the lease. `round` counts re-runs after a lost race. */
  const refreshUnderLease = (
    client: ProviderClient,
    key: GrantKey,
    scopes: ReadonlyArray<string> | null,
    minTtlMs: number,
    force: boolean,
    round: number,
    lease: Lease
  ): Effect.Effect<Obtained, ObtainError> =>
    Effect.gen(function* () {
      const grantId = grantKeyString(key)
      const now = yield* Clock.currentTimeMillis
      const current = yield* readUsable(key, scopes, now)
      const again = (nextForce: boolean) => retryRound(client, key, scopes, minTtlMs, nextForce, round, lease)

      // A rotation this process received but could not store: store it before anything else.
      const pending = unwritten.get(grantId)
      if (pending !== undefined) {
        const outcome = yield* commitRotation({ store, keyRing }, key, current, pending.rotation, lease)
        if (outcome === "unwritten") {
          return yield* Effect.fail(
            new UpstreamUnavailable({
              provider: key.provider,
              reason: "lease_timeout",
              message: "A rotated refresh token of this grant is not stored yet (storage failing); try again"
            })
          )
        }
        yield* settle(client, key, pending.rotation, outcome)
        return yield* again(false)
      }

      if (!force) {
        const shared = yield* sharedToken(key, current, scopes, now, dueMargin(current, minTtlMs))
        if (Option.isSome(shared)) {
          yield* count(Metrics.tokenRequests, { provider: key.provider, result: "shared" })
          return { token: shared.value, lifetimeMs: lifetimeOf(current) }
        }
      }
      // Decrypted before the attempt is marked: a key problem leaves no marker behind.
      const refreshToken = yield* decrypt(current.refreshToken, aadFor(key, "refresh_token"))
      const interrupted = current.refreshStartedAt !== null
      const marked: GrantRecord = {
        ...current,
        version: current.version + 1,
        refreshStartedAt: now,
        updatedAt: now
      }
      if ((yield* writeFenced(key, current.version, marked)) === "conflict") return yield* again(force)
      const failWith = (
        error: UpstreamUnavailable | UpstreamRejected,
        keepMarker: boolean,
        errorCode: string
      ) =>
        Effect.gen(function* () {
          const at = yield* Clock.currentTimeMillis
          yield* writeFenced(key, marked.version, {
            ...marked,
            version: marked.version + 1,
            updatedAt: at,
            failureCount: marked.failureCount + 1,
            lastErrorCode: errorCode,
            refreshStartedAt: keepMarker ? marked.refreshStartedAt : current.refreshStartedAt
          }).pipe(Effect.ignore)
          return yield* Effect.fail(error)
        })

      yield* step("before_upstream", key)
      // Nothing goes upstream once the lease may have expired: another owner could be refreshing.
      if (Either.isLeft(yield* Effect.either(lease.ensureHeld(leaseTtlMs / 3)))) {
        yield* count(Metrics.leaseLost, { provider: key.provider })
        return yield* failWith(
          new UpstreamUnavailable({
            provider: key.provider,
            reason: "lease_timeout",
            message: "The refresh lease of this grant could not be renewed; nothing was sent; try again"
          }),
          false,
          "lease_timeout"
        )
      }
      const outcome = yield* Effect.either(refreshUpstream(client, refreshToken, scopes))
      const after = yield* Clock.currentTimeMillis

      if (Either.isRight(outcome)) {
        const set = outcome.right
        const expiresAt = set.expiresAt ?? after + 5 * 60_000
        const tokenScopes = set.scopes ?? scopes ?? current.scopes
        const rotation: Rotation = {
          consumed: refreshToken,
          successor: set.refreshToken,
          accessToken: {
            token: set.accessToken,
            expiresAt,
            scopes: tokenScopes,
            audience: client.config.resource ?? null
          },
          refreshTokenExpiresAt: (previous) => refreshExpiry(client, set, after, previous),
          arrivedAt: after,
          errorCode: null
        }
        yield* step("after_upstream", key)
        const written = yield* commitRotation({ store, keyRing }, key, marked, rotation, lease)
        const settled = yield* settle(client, key, rotation, written)
        if (settled === "superseded") return yield* again(false)
        if (settled === "written") yield* step("after_write", key)
        yield* count(Metrics.refreshes, { provider: key.provider, outcome: "success" })
        yield* count(Metrics.tokenRequests, { provider: key.provider, result: "refresh" })
        return {
          token: {
            accessToken: set.accessToken,
            tokenType: "Bearer",
            expiresAt,
            scopes: tokenScopes,
            source: "refresh"
          },
          lifetimeMs: expiresAt - after
        }
      }

      const error = outcome.left
      if (error._tag === "UnreadableAnswer") {
        // A 2xx that failed validation: the provider processed the refresh.
        const rejected = new UpstreamRejected({
          provider: key.provider,
          error: "invalid_response",
          errorDescription: error.problem,
          status: error.status,
          message: `refresh at provider "${key.provider}" answered HTTP ${error.status} with a response that failed validation (${error.problem})`
        })
        if (error.refreshToken === null) {
          // No successor to recover: the outcome is unknown. The marker stays, so a later invalid_grant
          // reads as a lost rotation, and nothing is retried with the consumed token.
          yield* count(Metrics.refreshes, { provider: key.provider, outcome: "outcome_unknown" })
          yield* logOutcome(key, "outcome_unknown", "refresh answer unreadable and carried no refresh token")
          return yield* failWith(
            new UpstreamUnavailable({
              provider: key.provider,
              reason: "invalid_response",
              status: error.status,
              message: rejected.message
            }),
            true,
            "invalid_response"
          )
        }
        const rotation: Rotation = {
          consumed: refreshToken,
          successor: error.refreshToken,
          accessToken: null,
          refreshTokenExpiresAt: (previous) =>
            client.config.refreshTokenLifetime === undefined
              ? previous
              : after + Duration.toMillis(client.config.refreshTokenLifetime),
          arrivedAt: after,
          errorCode: "invalid_response"
        }
        yield* step("after_upstream", key)
        const written = yield* commitRotation({ store, keyRing }, key, marked, rotation, lease)
        yield* settle(client, key, rotation, written)
        yield* count(Metrics.refreshes, { provider: key.provider, outcome: "salvaged" })
        yield* logOutcome(key, "salvaged", "refresh answer failed validation; its refresh token was kept")
        yield* cache.invalidateGrant(grantId)
        return yield* Effect.fail(rejected)
      }

      if (error._tag === "InvalidGrant") {
        const latest = yield* store.get(key)
        if (Option.isSome(latest) && latest.value.version !== marked.version) {
          // Another writer rotated the grant meanwhile: a lost race, not a dead grant (F6).
          yield* count(Metrics.refreshes, { provider: key.provider, outcome: "race_recovered" })
          return yield* again(false)
        }
        const reason: ConsentRequiredReason = interrupted ? "rotation_lost" : "invalid_grant"
        yield* count(Metrics.refreshes, { provider: key.provider, outcome: reason })
        if (reason === "rotation_lost") {
          yield* logOutcome(
            key,
            reason,
            "the provider refused a refresh token whose successor was never stored"
          )
        }
        yield* writeFenced(key, marked.version, {
          ...marked,
          version: marked.version + 1,
          status: "reconsent_required",
          accessToken: null,
          updatedAt: after,
          failureCount: marked.failureCount + 1,
          lastErrorCode: reason,
          refreshStartedAt: null
        })
        yield* cache.invalidateGrant(grantId)
        return yield* consent(
          key,
          reason,
          interrupted
            ? "an earlier refresh may have rotated the token without its result being stored, and the provider refused the stored token"
            : `the provider answered invalid_grant${error.errorDescription ? ` (${error.errorDescription})` : ""}`
        )
      }

      // A refusal the provider answered (or a 429) did not rotate: the marker is cleared. A 5xx, a
      // timeout or a dropped connection may have followed a committed rotation: the marker stays.
      const processed = !isNotProcessed(error)
      yield* count(Metrics.refreshes, {
        provider: key.provider,
        outcome: processed ? "outcome_unknown" : "transient"
      })
      return yield* failWith(error, processed, error._tag === "UpstreamRejected" ? error.error : error.reason)
    })

  const retryRound = (
    client: ProviderClient,
    key: GrantKey,
    scopes: ReadonlyArray<string> | null,
    minTtlMs: number,
    force: boolean,
    round: number,
    lease: Lease
  ): Effect.Effect<Obtained, ObtainError> =>
    round + 1 >= MAX_ROUNDS
      ? Effect.fail(
          new UpstreamUnavailable({
            provider: key.provider,
            reason: "lease_timeout",
            message: `The grant of provider "${key.provider}" kept changing under concurrent writers; try again`
          })
        )
      : refreshUnderLease(client, key, scopes, minTtlMs, force, round + 1, lease)

  /** A still-valid token (cache or store) to serve while the provider is unavailable. */
  const fallback = (key: GrantKey, scopes: ReadonlyArray<string> | null, minTtlMs: number) =>
    Effect.gen(function* () {
      const now = yield* Clock.currentTimeMillis
      const floor = Math.max(minTtlMs, 1)
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
   * grant's lease. `force` refreshes whatever is stored (explicit rotation).
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
            return yield* refreshUnderLease(client, key, scopes, minTtlMs, force, 0, lease)
          })
        // One refresh per grant at a time in this process; then a slot of the provider's cap on
        // concurrent refreshes; only then the grant's lease. Grants queued behind the cap hold no lease
        // and cost the store nothing while they wait (a storm of expiring grants stays cheap).
        return yield* withGrantLock(
          grantKeyString(key),
          capacityOf(key.provider).withPermit(
            withLease(
              store,
              grantLeaseName(key),
              leaseOwner(),
              { ttl: settings.leaseTtl, wait: settings.leaseWait },
              underLease
            )
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

  return { obtain, readUsable, decrypt, remember, withGrantLock, leaseOwner, lifetimeOf }
}

/**
 * A remembered lifetime is measured from when the answer was recorded, a little after it arrived, and
 * `expires_in` counts whole seconds: a minTtl within a second of it may still be met.
 */
const LIFETIME_SLACK_MS = 1_000

/** A token and the lifetime it was issued with (null when unknown). */
interface Obtained {
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

const refreshExpiry = (
  client: ProviderClient,
  set: TokenSet,
  now: number,
  previous: number | null
): number | null => {
  if (set.refreshExpiresAt !== null) return set.refreshExpiresAt
  const rotated = set.refreshToken !== null
  const lifetime = client.config.refreshTokenLifetime
  if (lifetime !== undefined) return rotated ? now + Duration.toMillis(lifetime) : previous
  return rotated ? null : previous
}

const exponentialJittered = (baseMs: number) =>
  Schedule.exponential(Duration.millis(baseMs)).pipe(Schedule.jittered)
