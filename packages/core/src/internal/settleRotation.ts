import { Effect } from "effect"
import type { ProviderClient } from "../AuthorizationServer.js"
import type { ConsentRequired } from "../Errors.js"
import { type GrantKey, grantKeyString } from "../Grant.js"
import * as Metrics from "../Metrics.js"
import type { CommitOutcome, Rotation } from "./commitRotation.js"
import { count } from "./metrics.js"
import type { UnderLeaseContext } from "./refreshUnderLease.js"

const logOutcome = (key: GrantKey, outcome: string, message: string) =>
  Effect.logWarning(message).pipe(
    Effect.annotateLogs({ grant: grantKeyString(key), provider: key.provider, outcome })
  )

/**
 * Acts on where a rotation's write ended. Every path out of an answered refresh goes through here:
 * the successor is stored, or handed to the winner, or revoked with its deleted grant, or kept in
 * memory and reported.
 */
export const makeSettle =
  ({ unwritten, cache, consent }: Pick<UnderLeaseContext, "unwritten" | "cache" | "consent">) =>
  (
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
