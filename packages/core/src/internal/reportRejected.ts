import { Clock, Effect, Option, Redacted } from "effect"
import type { AccessTokenCacheService } from "../AccessTokenCache.js"
import type { StorageUnavailable } from "../Errors.js"
import { type GrantKey, type GrantRecord, grantKeyString } from "../Grant.js"
import type { GrantStoreDriver } from "../GrantStore.js"
import { aadFor, type KeyRingService } from "../KeyRing.js"
import * as Metrics from "../Metrics.js"
import { ACCESS_REJECTED, ACCESS_REJECTED_BEFORE } from "./commitRotation.js"
import { count } from "./metrics.js"
import { NO_SHARED_TOKENS, sharedTokensOf } from "./sharedTokens.js"

/** What a report of a refused access token did. */
export interface RejectionOutcome {
  /** The grant after the report; none when no grant is stored. */
  readonly grant: Option.Option<GrantRecord>
  /** The reported token was the grant's newest one (a strike); false for an older, already replaced token. */
  readonly counted: boolean
}

/**
 * A caller reports that the upstream API refused (401) an access token the broker gave it. The token
 * is dropped from the in-process cache and, when it is the grant's shared token, from the store, so
 * the next call refreshes. A refusal of the newest token is a strike; `strikes` of them in a row, each
 * after a refresh, mark the grant `reconsent_required` (status follows what the provider does with the
 * tokens, not only whether the refresh succeeded).
 */
export const makeReportRejected =
  (
    deps: {
      readonly store: GrantStoreDriver
      readonly keyRing: KeyRingService
      readonly cache: AccessTokenCacheService
    },
    strikes: number
  ) =>
  (
    key: GrantKey,
    accessToken: Redacted.Redacted<string>
  ): Effect.Effect<RejectionOutcome, StorageUnavailable> =>
    Effect.gen(function* () {
      const { store, keyRing, cache } = deps
      yield* cache.invalidateGrant(grantKeyString(key))
      for (let attempt = 0; attempt < 8; attempt++) {
        const found = yield* store.get(key)
        if (Option.isNone(found)) return { grant: Option.none(), counted: false }
        const record = found.value
        // the newest token of one of the grant's scope sets: a strike, and every shared token is dropped
        // (a provider refusing one of them has most likely revoked them all)
        let isNewest = false
        for (const shared of sharedTokensOf(record)) {
          isNewest = yield* keyRing.decrypt(shared.envelope, aadFor(key, "access_token")).pipe(
            Effect.map((stored) => Redacted.value(stored) === Redacted.value(accessToken)),
            Effect.orElseSucceed(() => false)
          )
          if (isNewest) break
        }
        if (!isNewest) return { grant: found, counted: false }
        const now = yield* Clock.currentTimeMillis
        const inRow =
          record.lastErrorCode === ACCESS_REJECTED_BEFORE || record.lastErrorCode === ACCESS_REJECTED
            ? record.failureCount + 1
            : 1
        const next: GrantRecord = {
          ...record,
          version: record.version + 1,
          ...NO_SHARED_TOKENS,
          status: inRow >= strikes ? "reconsent_required" : record.status,
          failureCount: inRow,
          lastErrorCode: ACCESS_REJECTED,
          updatedAt: now
        }
        if ((yield* store.compareAndSet(key, record.version, next)) === "ok") {
          yield* count(Metrics.accessRejections, {
            provider: key.provider,
            outcome: next.status === "reconsent_required" ? "reconsent_required" : "dropped"
          })
          if (next.status === "reconsent_required" && record.status !== "reconsent_required") {
            yield* Effect.logWarning(
              "access tokens refused upstream after refreshes; grant marked for consent"
            ).pipe(
              Effect.annotateLogs({
                grant: grantKeyString(key),
                provider: key.provider,
                outcome: ACCESS_REJECTED
              })
            )
          }
          return { grant: Option.some(next), counted: true }
        }
      }
      // The grant kept changing (refreshes): the shared token was replaced anyway.
      return { grant: yield* store.get(key), counted: false }
    })
