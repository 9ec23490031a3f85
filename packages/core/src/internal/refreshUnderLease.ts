import { Clock, Duration, Effect, Either, Option, type Redacted } from "effect"
import type { AccessTokenCacheService } from "../AccessTokenCache.js"
import type { ProviderClient, TokenSet } from "../AuthorizationServer.js"
import {
  type ConsentRequired,
  type ConsentRequiredReason,
  type DecryptionFailed,
  type StorageUnavailable,
  UpstreamRejected,
  UpstreamUnavailable
} from "../Errors.js"
import { type GrantKey, type GrantRecord, grantKeyString } from "../Grant.js"
import type { GrantStoreDriver, Lease } from "../GrantStore.js"
import { aadFor, type KeyRingService } from "../KeyRing.js"
import * as Metrics from "../Metrics.js"
import { same as sameScopes } from "../Scopes.js"
import type { IssuedToken } from "../TokenBroker.js"
import { commitRotation, type Rotation } from "./commitRotation.js"
import { count } from "./metrics.js"
import type { ObtainError, Obtained, RefreshStep } from "./refreshProtocol.js"
import { isNotProcessed, type RefreshFailure } from "./refreshUpstream.js"
import { makeSettle } from "./settleRotation.js"
import { NO_SHARED_TOKENS } from "./sharedTokens.js"
import { logUpstreamFailure } from "./upstreamLog.js"

/** What the refresh under the lease needs from the protocol around it. */
export interface UnderLeaseContext {
  readonly leaseTtlMs: number
  readonly store: GrantStoreDriver
  readonly keyRing: KeyRingService
  readonly cache: AccessTokenCacheService
  /** Rotations this process received but could not store yet, by grant. */
  readonly unwritten: Map<string, { readonly rotation: Rotation }>
  readonly refreshUpstream: (
    client: ProviderClient,
    refreshToken: Redacted.Redacted<string>,
    scopes: ReadonlyArray<string> | null
  ) => Effect.Effect<TokenSet, RefreshFailure>
  readonly readUsable: (
    key: GrantKey,
    scopes: ReadonlyArray<string> | null,
    now: number
  ) => Effect.Effect<GrantRecord, ConsentRequired | StorageUnavailable>
  readonly sharedToken: (
    key: GrantKey,
    record: GrantRecord,
    scopes: ReadonlyArray<string> | null,
    now: number,
    minRemainingMs: number
  ) => Effect.Effect<Option.Option<IssuedToken>, DecryptionFailed | StorageUnavailable>
  readonly dueMargin: (record: GrantRecord, minTtlMs: number) => number
  readonly lifetimeOf: (record: GrantRecord) => number | null
  readonly decrypt: (
    envelope: string,
    aad: string
  ) => Effect.Effect<Redacted.Redacted<string>, DecryptionFailed | StorageUnavailable>
  readonly writeFenced: (
    key: GrantKey,
    expectedVersion: number,
    next: GrantRecord
  ) => Effect.Effect<"ok" | "conflict", StorageUnavailable>
  readonly step: (name: RefreshStep, key: GrantKey) => Effect.Effect<void>
  readonly consent: (key: GrantKey, reason: ConsentRequiredReason, detail: string) => ConsentRequired
}

/** One refresh asked of a grant whose lease is held. */
export interface LeasedRefresh {
  readonly client: ProviderClient
  readonly key: GrantKey
  readonly scopes: ReadonlyArray<string> | null
  readonly minTtlMs: number
  /** Refresh whatever is stored (explicit rotation), even when a shared token would serve. */
  readonly force: boolean
  readonly lease: Lease
}

/** How often one call re-runs the protocol after losing a race (a CAS conflict or a rotated grant). */
const MAX_ROUNDS = 3

/**
 * The refresh of one grant while its lease is held: mark the attempt, call the provider, commit the
 * answer. Every path out of an answered refresh goes through `commitRotation` and `settle`.
 */
export const makeRefreshUnderLease = (ctx: UnderLeaseContext) => {
  const settle = makeSettle(ctx)

  /** The refresh under the lease. `round` counts re-runs after a lost race (0 for the caller's own). */
  const refreshUnderLease = (request: LeasedRefresh, round = 0): Effect.Effect<Obtained, ObtainError> =>
    Effect.gen(function* () {
      const { client, key, scopes, minTtlMs, force, lease } = request
      const grantId = grantKeyString(key)
      const now = yield* Clock.currentTimeMillis
      const current = yield* ctx.readUsable(key, scopes, now)
      const again = (nextForce: boolean) => retryRound({ ...request, force: nextForce }, round)
      /** A refresh that failed upstream: counted by its outcome and logged once. */
      const report = (
        error: RefreshFailure,
        outcome: string,
        detail?: string,
        fields: Record<string, unknown> = {}
      ) =>
        Effect.zipRight(
          count(Metrics.refreshes, { provider: key.provider, outcome }),
          logUpstreamFailure(
            "refresh",
            { provider: key.provider, grant: grantId },
            error,
            { outcome, ...fields },
            detail
          )
        )

      // A rotation this process received but could not store: store it before anything else.
      const pending = ctx.unwritten.get(grantId)
      if (pending !== undefined) {
        const outcome = yield* commitRotation(ctx, key, current, pending.rotation, lease)
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
        const shared = yield* ctx.sharedToken(key, current, scopes, now, ctx.dueMargin(current, minTtlMs))
        if (Option.isSome(shared)) {
          yield* count(Metrics.tokenRequests, { provider: key.provider, result: "shared" })
          return { token: shared.value, lifetimeMs: ctx.lifetimeOf(current) }
        }
      }
      // Decrypted before the attempt is marked: a key problem leaves no marker behind.
      const refreshToken = yield* ctx.decrypt(current.refreshToken, aadFor(key, "refresh_token"))
      const interrupted = current.refreshStartedAt !== null
      const marked: GrantRecord = {
        ...current,
        version: current.version + 1,
        refreshStartedAt: now,
        updatedAt: now
      }
      if ((yield* ctx.writeFenced(key, current.version, marked)) === "conflict") return yield* again(force)
      /** The marked record after a failed attempt: one failure more, its code remembered. */
      const afterFailure = (at: number, errorCode: string, refreshStartedAt: number | null): GrantRecord => ({
        ...marked,
        version: marked.version + 1,
        updatedAt: at,
        failureCount: marked.failureCount + 1,
        lastErrorCode: errorCode,
        refreshStartedAt
      })
      const failWith = (
        error: UpstreamUnavailable | UpstreamRejected,
        keepMarker: boolean,
        errorCode: string
      ) =>
        Effect.gen(function* () {
          const at = yield* Clock.currentTimeMillis
          const startedAt = keepMarker ? marked.refreshStartedAt : current.refreshStartedAt
          yield* ctx
            .writeFenced(key, marked.version, afterFailure(at, errorCode, startedAt))
            .pipe(Effect.ignore)
          return yield* Effect.fail(error)
        })

      yield* ctx.step("before_upstream", key)
      // Nothing goes upstream once the lease may have expired: another owner could be refreshing.
      if (Either.isLeft(yield* Effect.either(lease.ensureHeld(ctx.leaseTtlMs / 3)))) {
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
      const outcome = yield* Effect.either(ctx.refreshUpstream(client, refreshToken, scopes))
      const after = yield* Clock.currentTimeMillis

      if (Either.isRight(outcome)) {
        const set = outcome.right
        const expiresAt = set.expiresAt ?? after + 5 * 60_000
        const tokenScopes = set.scopes ?? scopes ?? current.scopes
        const requested = scopes ?? current.scopes
        const rotation: Rotation = {
          consumed: refreshToken,
          successor: set.refreshToken,
          accessToken: {
            token: set.accessToken,
            expiresAt,
            scopes: tokenScopes,
            // shared per requested scope set: a provider answering another scope string is still found
            ...(sameScopes(requested, tokenScopes) ? {} : { requested }),
            audience: client.config.resource ?? null
          },
          refreshTokenExpiresAt: (previous) => refreshExpiry(client, set, after, previous),
          arrivedAt: after,
          errorCode: null
        }
        yield* ctx.step("after_upstream", key)
        const written = yield* commitRotation(ctx, key, marked, rotation, lease)
        const settled = yield* settle(client, key, rotation, written)
        if (settled === "superseded") return yield* again(false)
        if (settled === "written") yield* ctx.step("after_write", key)
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
          yield* report(error, "outcome_unknown", "refresh answer unreadable and carried no refresh token")
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
        yield* ctx.step("after_upstream", key)
        const written = yield* commitRotation(ctx, key, marked, rotation, lease)
        yield* settle(client, key, rotation, written)
        yield* report(error, "salvaged", "refresh answer failed validation; its refresh token was kept")
        yield* ctx.cache.invalidateGrant(grantId)
        return yield* Effect.fail(rejected)
      }

      if (error._tag === "InvalidGrant") {
        const latest = yield* ctx.store.get(key)
        if (Option.isSome(latest) && latest.value.version !== marked.version) {
          // Another writer rotated the grant meanwhile: a lost race, not a dead grant (F6).
          yield* count(Metrics.refreshes, { provider: key.provider, outcome: "race_recovered" })
          return yield* again(false)
        }
        const refusal = error.refusal
        const reason: ConsentRequiredReason = interrupted
          ? "rotation_lost"
          : refusal !== undefined
            ? "refused_without_error"
            : "invalid_grant"
        // once: the outcome, and for a refusal without an OAuth error what came back (status, content
        // type, the body's first bytes with token-like runs redacted)
        yield* report(
          error,
          reason,
          reason === "rotation_lost"
            ? "the provider refused a refresh token whose successor was never stored; grant marked for consent"
            : refusal !== undefined
              ? `the provider refused the refresh with HTTP ${refusal.status} and no OAuth error; grant marked for consent`
              : "grant marked for consent",
          refusal === undefined ? {} : { contentType: refusal.contentType, body: refusal.body }
        )
        yield* ctx.writeFenced(key, marked.version, {
          ...afterFailure(after, reason, null),
          status: "reconsent_required",
          ...NO_SHARED_TOKENS
        })
        yield* ctx.cache.invalidateGrant(grantId)
        return yield* ctx.consent(
          key,
          reason,
          interrupted
            ? "an earlier refresh may have rotated the token without its result being stored, and the provider refused the stored token"
            : refusal !== undefined
              ? `the provider refused the refresh with HTTP ${refusal.status} and no OAuth error (content type ${refusal.contentType})`
              : `the provider answered invalid_grant${error.errorDescription ? ` (${error.errorDescription})` : ""}`
        )
      }

      // A refusal the provider answered (or a 429) did not rotate: the marker is cleared. A 5xx, a
      // timeout or a dropped connection may have followed a committed rotation: the marker stays.
      const processed = !isNotProcessed(error)
      const unsettled = processed ? "outcome_unknown" : "transient"
      if (error._tag === "UpstreamUnavailable" && error.reason === "circuit_open") {
        // an open circuit sent nothing: the failures that opened it were logged
        yield* count(Metrics.refreshes, { provider: key.provider, outcome: unsettled })
      } else {
        yield* report(error, unsettled)
      }
      return yield* failWith(error, processed, error._tag === "UpstreamRejected" ? error.error : error.reason)
    })

  const retryRound = (request: LeasedRefresh, round: number): Effect.Effect<Obtained, ObtainError> =>
    round + 1 >= MAX_ROUNDS
      ? Effect.fail(
          new UpstreamUnavailable({
            provider: request.key.provider,
            reason: "lease_timeout",
            message: `The grant of provider "${request.key.provider}" kept changing under concurrent writers; try again`
          })
        )
      : refreshUnderLease(request, round + 1)

  return refreshUnderLease
}

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
