import { Clock, Duration, Effect, Either, Option, type Redacted, Schedule } from "effect"
import { type AccessTokenCacheService, cacheKey } from "../AccessTokenCache.js"
import type {
  AuthorizationServersService,
  InvalidGrant,
  ProviderClient,
  TokenSet,
  UpstreamError
} from "../AuthorizationServer.js"
import {
  ConsentRequired,
  type ConsentRequiredReason,
  type DecryptionFailed,
  InvalidRequest,
  type ProviderNotFound,
  type StorageUnavailable,
  type UpstreamRejected,
  UpstreamUnavailable
} from "../Errors.js"
import { type GrantKey, type GrantRecord, grantKeyString } from "../Grant.js"
import { type GrantStoreDriver, type LeaseLost, LeaseTimeout, withLease } from "../GrantStore.js"
import { aadFor, type KeyRingService } from "../KeyRing.js"
import * as Metrics from "../Metrics.js"
import type { IssuedToken } from "../TokenBroker.js"
import { type CircuitBreaker, makeCircuitBreaker } from "./circuitBreaker.js"
import { count, observe } from "./metrics.js"
import { makePermits, type Permits } from "./permits.js"
import { isSubset, sameScopes } from "./scopes.js"

export interface RefreshSettings {
  readonly earlyRefreshMs: number
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
  const circuits = new Map<string, CircuitBreaker>()
  const capacity = new Map<string, Permits>()
  const grantLocks = new Map<string, { permits: Permits; users: number }>()

  const circuitOf = (provider: string) => {
    let circuit = circuits.get(provider)
    if (circuit === undefined) {
      circuit = makeCircuitBreaker(settings.circuitFailureThreshold, settings.circuitOpenMs)
      circuits.set(provider, circuit)
    }
    return circuit
  }
  const capacityOf = (provider: string) => {
    let permits = capacity.get(provider)
    if (permits === undefined) {
      permits = makePermits(settings.maxConcurrentRefreshes)
      capacity.set(provider, permits)
    }
    return permits
  }
  /** One refresh per grant at a time in this process, before the cluster-wide lease is asked. */
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
            record.lastErrorCode === "rotation_lost" ? "rotation_lost" : "reconsent_required",
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

  /** The access token stored with the grant, when it matches the scopes and lives long enough. */
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

  const remember = (key: GrantKey, scopes: ReadonlyArray<string> | null, token: IssuedToken) =>
    cache.set(grantKeyString(key), cacheKey(grantKeyString(key), scopes, null), {
      accessToken: token.accessToken,
      expiresAt: token.expiresAt,
      scopes: token.scopes
    })

  /** compare-and-set, retried on storage failures while the lease lasts (a rotated token must land). */
  const writeFenced = (key: GrantKey, expectedVersion: number, next: GrantRecord) =>
    store.compareAndSet(key, expectedVersion, next).pipe(
      Effect.retry({ times: 4, schedule: exponentialJittered(50) }),
      Effect.tap((result) =>
        result === "conflict" ? count(Metrics.casConflicts, { provider: key.provider }) : Effect.void
      )
    )

  /** One upstream refresh with transient-failure retries and the circuit (the caller holds a cap slot). */
  const refreshUpstream = (
    client: ProviderClient,
    refreshToken: Redacted.Redacted<string>,
    scopes: ReadonlyArray<string> | null
  ): Effect.Effect<TokenSet, InvalidGrant | UpstreamError> => {
    const provider = client.config.id
    const circuit = circuitOf(provider)
    const attempt = Effect.gen(function* () {
      if (!(yield* circuit.tryPass)) {
        return yield* new UpstreamUnavailable({
          provider,
          reason: "circuit_open",
          message: `Provider "${provider}" failed repeatedly; calls pause until its circuit closes`
        })
      }
      const started = yield* Clock.currentTimeMillis
      const result = yield* client
        .refresh({ refreshToken, scopes: scopes ?? undefined, resource: client.config.resource })
        .pipe(Effect.either)
      const ended = yield* Clock.currentTimeMillis
      yield* observe(Metrics.refreshDuration, { provider }, (ended - started) / 1000)
      if (Either.isRight(result) || result.left._tag !== "UpstreamUnavailable") {
        yield* circuit.onSuccess
      } else if (yield* circuit.onFailure) {
        yield* count(Metrics.circuitOpen, { provider })
      }
      return yield* result
    })
    return Effect.gen(function* () {
      const deadline = (yield* Clock.currentTimeMillis) + settings.retryDeadlineMs
      let tries = 0
      while (true) {
        tries += 1
        const result = yield* Effect.either(attempt)
        if (Either.isRight(result)) return result.right
        const error = result.left
        // Only a refusal the provider answered is safe to retry: after a timeout or a dropped
        // connection the provider may have rotated the token already, and a retry would be reuse.
        if (!isSafeToRetry(error) || tries >= settings.retryAttempts) return yield* Effect.fail(error)
        const backoff = settings.retryBaseDelayMs * 2 ** (tries - 1) * (0.5 + Math.random())
        const wait = Math.max(
          backoff,
          error.retryAfter === undefined ? 0 : Duration.toMillis(error.retryAfter)
        )
        if ((yield* Clock.currentTimeMillis) + wait > deadline) return yield* Effect.fail(error)
        yield* Effect.sleep(Duration.millis(wait))
      }
    })
  }

  /** The refresh under the lease. `round` counts re-runs after a lost race. */
  const refreshUnderLease = (
    client: ProviderClient,
    key: GrantKey,
    scopes: ReadonlyArray<string> | null,
    minRemainingMs: number,
    force: boolean,
    round: number
  ): Effect.Effect<IssuedToken, ObtainError> =>
    Effect.gen(function* () {
      const now = yield* Clock.currentTimeMillis
      const current = yield* readUsable(key, scopes, now)
      if (!force) {
        const shared = yield* sharedToken(key, current, scopes, now, minRemainingMs)
        if (Option.isSome(shared)) {
          yield* count(Metrics.tokenRequests, { provider: key.provider, result: "shared" })
          return shared.value
        }
      }
      const interrupted = current.refreshStartedAt !== null
      const marked: GrantRecord = {
        ...current,
        version: current.version + 1,
        refreshStartedAt: now,
        updatedAt: now
      }
      if ((yield* writeFenced(key, current.version, marked)) === "conflict") {
        return yield* retryRound(client, key, scopes, minRemainingMs, force, round)
      }
      const refreshToken = yield* decrypt(current.refreshToken, aadFor(key, "refresh_token"))
      yield* step("before_upstream", key)
      const outcome = yield* Effect.either(refreshUpstream(client, refreshToken, scopes))
      const after = yield* Clock.currentTimeMillis

      if (Either.isRight(outcome)) {
        const set = outcome.right
        const expiresAt = set.expiresAt ?? after + 5 * 60_000
        const tokenScopes = set.scopes ?? scopes ?? current.scopes
        const envelope = yield* keyRing.encrypt(set.accessToken, aadFor(key, "access_token"))
        const rotated = set.refreshToken !== null
        const next: GrantRecord = {
          ...marked,
          version: marked.version + 1,
          // A response without a refresh token keeps the stored one (field note F7).
          refreshToken: rotated
            ? yield* keyRing.encrypt(set.refreshToken, aadFor(key, "refresh_token"))
            : current.refreshToken,
          refreshTokenExpiresAt: refreshExpiry(client, set, after, rotated, current.refreshTokenExpiresAt),
          accessToken: { envelope, expiresAt, scopes: tokenScopes, audience: client.config.resource ?? null },
          lastRefreshedAt: after,
          lastUsedAt: after,
          updatedAt: after,
          failureCount: 0,
          lastErrorCode: null,
          refreshStartedAt: null
        }
        const token: IssuedToken = {
          accessToken: set.accessToken,
          tokenType: "Bearer",
          expiresAt,
          scopes: tokenScopes,
          source: "refresh"
        }
        yield* step("after_upstream", key)
        if ((yield* writeFenced(key, marked.version, next)) === "conflict") {
          // The lease was lost while we refreshed: another writer got in. Our token is valid; count it.
          yield* count(Metrics.leaseLost, { provider: key.provider })
          yield* count(Metrics.refreshes, { provider: key.provider, outcome: "race_recovered" })
          return token
        }
        yield* step("after_write", key)
        yield* count(Metrics.refreshes, { provider: key.provider, outcome: "success" })
        yield* count(Metrics.tokenRequests, { provider: key.provider, result: "refresh" })
        if (expiresAt - after < minRemainingMs && minRemainingMs > settings.earlyRefreshMs) {
          return yield* new InvalidRequest({
            field: "minTtl",
            message: `Provider "${key.provider}" issues access tokens living ${Math.round((expiresAt - after) / 1000)} s, less than the minimum asked`
          })
        }
        return token
      }

      const error = outcome.left
      if (error._tag === "InvalidGrant") {
        const latest = yield* store.get(key)
        if (Option.isSome(latest) && latest.value.version !== marked.version) {
          // Another writer rotated the grant meanwhile: a lost race, not a dead grant (F6).
          yield* count(Metrics.refreshes, { provider: key.provider, outcome: "race_recovered" })
          return yield* retryRound(client, key, scopes, minRemainingMs, false, round)
        }
        const reason: ConsentRequiredReason = interrupted ? "rotation_lost" : "invalid_grant"
        yield* count(Metrics.refreshes, { provider: key.provider, outcome: reason })
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
        yield* cache.invalidateGrant(grantKeyString(key))
        return yield* consent(
          key,
          reason,
          interrupted
            ? "an earlier refresh was interrupted before its result was stored, and the provider refused the stored token"
            : `the provider answered invalid_grant${error.errorDescription ? ` (${error.errorDescription})` : ""}`
        )
      }

      yield* count(Metrics.refreshes, { provider: key.provider, outcome: "transient" })
      // A refusal with a status means the provider did not rotate: clear the marker. Without an answer
      // (timeout, dropped connection) the outcome upstream is unknown: keep it, so a later
      // invalid_grant is reported as a lost rotation.
      const answered =
        error._tag === "UpstreamRejected" || error.status !== undefined || error.reason === "circuit_open"
      yield* writeFenced(key, marked.version, {
        ...marked,
        version: marked.version + 1,
        updatedAt: after,
        failureCount: marked.failureCount + 1,
        lastErrorCode: error._tag === "UpstreamRejected" ? error.error : error.reason,
        refreshStartedAt: answered ? null : marked.refreshStartedAt
      }).pipe(Effect.ignore)
      return yield* Effect.fail(error)
    })

  const retryRound = (
    client: ProviderClient,
    key: GrantKey,
    scopes: ReadonlyArray<string> | null,
    minRemainingMs: number,
    force: boolean,
    round: number
  ): Effect.Effect<IssuedToken, ObtainError> =>
    round + 1 >= MAX_ROUNDS
      ? Effect.fail(
          new UpstreamUnavailable({
            provider: key.provider,
            reason: "lease_timeout",
            message: `The grant of provider "${key.provider}" kept changing under concurrent writers; try again`
          })
        )
      : refreshUnderLease(client, key, scopes, minRemainingMs, force, round + 1)

  /** A still-valid token (cache or store) to serve while the provider is unavailable. */
  const fallback = (key: GrantKey, scopes: ReadonlyArray<string> | null, minTtlMs: number) =>
    Effect.gen(function* () {
      const now = yield* Clock.currentTimeMillis
      const floor = Math.max(minTtlMs, 1)
      const cached = cache.lookup(cacheKey(grantKeyString(key), scopes, null), now, floor)
      if (cached !== undefined) {
        return Option.some<IssuedToken>({ ...cached, tokenType: "Bearer", source: "cache" })
      }
      const record = yield* store.get(key)
      if (Option.isNone(record)) return Option.none<IssuedToken>()
      return yield* sharedToken(key, record.value, scopes, now, floor)
    }).pipe(Effect.orElseSucceed(() => Option.none<IssuedToken>()))

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
      const minRemainingMs = Math.max(settings.earlyRefreshMs, minTtlMs)
      const fresh = Effect.gen(function* () {
        const now = yield* Clock.currentTimeMillis
        const record = yield* readUsable(key, scopes, now)
        if (!force) {
          const shared = yield* sharedToken(key, record, scopes, now, minRemainingMs)
          if (Option.isSome(shared)) {
            yield* count(Metrics.tokenRequests, { provider: key.provider, result: "shared" })
            return shared.value
          }
        }
        const waitStarted = yield* Clock.currentTimeMillis
        const underLease = Effect.gen(function* () {
          const acquired = yield* Clock.currentTimeMillis
          yield* observe(Metrics.leaseWait, { provider: key.provider }, (acquired - waitStarted) / 1000)
          return yield* refreshUnderLease(client, key, scopes, minRemainingMs, force, 0)
        })
        // One refresh per grant at a time in this process; then a slot of the provider's cap on
        // concurrent refreshes; only then the grant's lease. Grants queued behind the cap hold no lease
        // and cost the store nothing while they wait (a storm of expiring grants stays cheap).
        return yield* withGrantLock(
          grantKeyString(key),
          capacityOf(key.provider).withPermit(
            withLease(
              store,
              `grant:${grantKeyString(key)}`,
              settings.instanceId,
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
      const token = yield* fresh.pipe(
        Effect.catchIf(
          (e): e is UpstreamUnavailable | StorageUnavailable =>
            e._tag === "UpstreamUnavailable" || e._tag === "StorageUnavailable",
          (error) =>
            Effect.flatMap(fallback(key, scopes, minTtlMs), (found) =>
              Option.isSome(found) ? Effect.succeed(found.value) : Effect.fail(error)
            )
        )
      )
      const served = yield* Clock.currentTimeMillis
      yield* observe(
        Metrics.servedTokenLifetime,
        { provider: key.provider },
        (token.expiresAt - served) / 1000
      )
      yield* remember(key, scopes, token)
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

  return { obtain, readUsable, decrypt, remember }
}

const isSafeToRetry = (error: InvalidGrant | UpstreamError): error is UpstreamUnavailable =>
  error._tag === "UpstreamUnavailable" && (error.reason === "server_error" || error.reason === "rate_limited")

const refreshExpiry = (
  client: ProviderClient,
  set: TokenSet,
  now: number,
  rotated: boolean,
  previous: number | null
): number | null => {
  if (set.refreshExpiresAt !== null) return set.refreshExpiresAt
  const lifetime = client.config.refreshTokenLifetime
  if (lifetime !== undefined) return rotated ? now + Duration.toMillis(lifetime) : previous
  return rotated ? null : previous
}

const exponentialJittered = (baseMs: number) =>
  Schedule.exponential(Duration.millis(baseMs)).pipe(Schedule.jittered)
