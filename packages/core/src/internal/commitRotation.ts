import { Clock, Duration, Effect, Either, Option, Random, Redacted } from "effect"
import { StorageUnavailable } from "../Errors.js"
import type { GrantKey, GrantRecord } from "../Grant.js"
import type { GrantStoreDriver, Lease } from "../GrantStore.js"
import { aadFor, type KeyRingService } from "../KeyRing.js"
import * as Metrics from "../Metrics.js"
import { count } from "./metrics.js"
import { withSharedToken } from "./sharedTokens.js"

/**
 * What one answered refresh left in memory: the successor refresh token (when the provider rotated),
 * the new access token (absent when only the refresh token could be recovered from an unreadable
 * answer), and when it arrived. Held until it is written; it is the only copy of the successor.
 */
export interface Rotation {
  /** The refresh token that was sent: consumed at the provider once it rotated. */
  readonly consumed: Redacted.Redacted<string>
  readonly successor: Redacted.Redacted<string> | null
  readonly accessToken: {
    readonly token: Redacted.Redacted<string>
    readonly expiresAt: number
    readonly scopes: ReadonlyArray<string>
    /** The scope set asked for, when the provider answered with another one. */
    readonly requested?: ReadonlyArray<string> | undefined
    readonly audience: string | null
  } | null
  /** The refresh token's expiry after this rotation, from the previous one when the provider did not rotate. */
  readonly refreshTokenExpiresAt: (previous: number | null) => number | null
  readonly arrivedAt: number
  /** `lastErrorCode` to record with it (an unreadable answer), null for a clean refresh. */
  readonly errorCode: string | null
}

/**
 * - `written`: the rotation is stored.
 * - `superseded`: another writer stored a different refresh token (a re-consent): theirs stands.
 * - `removed`: the grant was deleted meanwhile (revoked).
 * - `unwritten`: encryption or the store kept failing for as long as the lease was held.
 */
export type CommitOutcome = "written" | "superseded" | "removed" | "unwritten"

/**
 * `lastErrorCode` of a grant whose newest access token a caller reported as refused upstream, and of one
 * refreshed since such a report. A refresh alone does not clear the strikes (the provider may keep
 * refusing the tokens it issues): they carry over once, and clear when a refresh follows without a new
 * report in between.
 */
export const ACCESS_REJECTED = "access_token_rejected"
export const ACCESS_REJECTED_BEFORE = "access_token_rejected_before"

const afterRefresh = (
  expected: GrantRecord,
  errorCode: string | null
): Pick<GrantRecord, "failureCount" | "lastErrorCode"> => {
  if (errorCode !== null) return { failureCount: expected.failureCount + 1, lastErrorCode: errorCode }
  if (expected.lastErrorCode === ACCESS_REJECTED) {
    return { failureCount: expected.failureCount, lastErrorCode: ACCESS_REJECTED_BEFORE }
  }
  return { failureCount: 0, lastErrorCode: null }
}

/** How often a write re-reads a grant that changed under it before backing off. */
const MAX_REAPPLY = 8

/**
 * Writes a rotation onto the grant under compare-and-set. This is the one place a successor refresh
 * token is stored, so none is ever dropped:
 * - a conflict re-reads the grant; if it still holds the consumed refresh token, is active and carries
 *   this refresh's marker, only metadata moved (a key re-encryption, an admin write): the rotation is
 *   applied again on the new version; a grant another refresh marked meanwhile is left as it is;
 * - if it holds the successor, an earlier attempt whose answer was lost did write it;
 * - encryption and store failures are retried with backoff while the lease is held (at least once).
 */
export const commitRotation = (
  deps: { readonly store: GrantStoreDriver; readonly keyRing: KeyRingService },
  key: GrantKey,
  base: GrantRecord,
  rotation: Rotation,
  lease: Lease
): Effect.Effect<CommitOutcome> =>
  Effect.gen(function* () {
    const { store, keyRing } = deps
    let expected = base
    let refreshEnvelope: string | undefined
    let accessEnvelope: string | undefined
    let reapplied = 0
    let delayMs = 50

    const sameToken = (envelope: string, token: Redacted.Redacted<string>) =>
      keyRing.decrypt(envelope, aadFor(key, "refresh_token")).pipe(
        Effect.map((stored) => Redacted.value(stored) === Redacted.value(token)),
        Effect.orElseSucceed(() => false)
      )

    const attempt: Effect.Effect<CommitOutcome | "again", StorageUnavailable> = Effect.gen(function* () {
      if (rotation.successor !== null && refreshEnvelope === undefined) {
        refreshEnvelope = yield* keyRing.encrypt(rotation.successor, aadFor(key, "refresh_token"))
      }
      if (rotation.accessToken !== null && accessEnvelope === undefined) {
        accessEnvelope = yield* keyRing.encrypt(rotation.accessToken.token, aadFor(key, "access_token"))
      }
      const access = rotation.accessToken
      const next: GrantRecord = {
        ...expected,
        version: expected.version + 1,
        status: "active",
        refreshToken: refreshEnvelope ?? expected.refreshToken,
        refreshTokenExpiresAt: rotation.refreshTokenExpiresAt(expected.refreshTokenExpiresAt),
        ...(access === null || accessEnvelope === undefined
          ? {}
          : withSharedToken(
              expected,
              {
                envelope: accessEnvelope,
                expiresAt: access.expiresAt,
                scopes: access.scopes,
                ...(access.requested === undefined ? {} : { requested: access.requested }),
                audience: access.audience
              },
              rotation.arrivedAt
            )),
        lastRefreshedAt: access === null ? expected.lastRefreshedAt : rotation.arrivedAt,
        lastUsedAt: rotation.arrivedAt,
        updatedAt: Math.max(rotation.arrivedAt, expected.updatedAt),
        ...afterRefresh(expected, rotation.errorCode),
        refreshStartedAt: null
      }
      if ((yield* store.compareAndSet(key, expected.version, next)) === "ok") return "written" as const
      yield* count(Metrics.casConflicts, { provider: key.provider })
      const latest = yield* store.get(key)
      if (Option.isNone(latest)) return "removed" as const
      // Only metadata moved (a key re-encryption, an admin write) when the grant still holds the consumed
      // token, is still active and carries this refresh's marker. A grant that another owner marked
      // (it took the expired lease and went upstream with the same token, and was refused: the
      // provider revoked the family) is not resurrected with a successor that died with it.
      const onlyMetadataMoved =
        latest.value.status === "active" &&
        latest.value.refreshStartedAt === expected.refreshStartedAt &&
        (yield* sameToken(latest.value.refreshToken, rotation.consumed))
      if (onlyMetadataMoved) {
        expected = latest.value
        reapplied += 1
        return reapplied > MAX_REAPPLY ? yield* Effect.fail(busy) : ("again" as const)
      }
      if (rotation.successor !== null && (yield* sameToken(latest.value.refreshToken, rotation.successor))) {
        return "written" as const
      }
      return "superseded" as const
    })

    while (true) {
      const result = yield* Effect.either(attempt)
      if (Either.isRight(result)) {
        if (result.right === "again") continue
        return result.right
      }
      // Encryption or the store failed: the rotation stays in memory; retry while the lease is held.
      const now = yield* Clock.currentTimeMillis
      if (now + delayMs >= (yield* lease.heldUntil)) return "unwritten" as const
      yield* Effect.sleep(Duration.millis(delayMs * (0.75 + 0.5 * (yield* Random.next))))
      delayMs = Math.min(delayMs * 2, 1_000)
    }
  })

/** A grant that keeps changing under the write: treated like a store failure (back off, retry). */
const busy = new StorageUnavailable({ operation: "compareAndSet", message: "the grant kept changing" })
