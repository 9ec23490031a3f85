import { Effect, Option } from "effect"
import { InvalidRequest } from "../Errors.js"
import { type GrantKey, grantKeyString } from "../Grant.js"
import { grantLeaseName, type LeaseLost, type LeaseTimeout, withLease } from "../GrantStore.js"
import type { TokenBrokerService } from "../TokenBroker.js"
import type { BrokerContext } from "./brokerContext.js"
import { decodeCursor, encodeCursor } from "./cursor.js"
import { toGrantInfo } from "./grantInfo.js"
import { revokeAtProvider } from "./revokeUpstream.js"

/** Grant administration: a grant's status, the paged list, and revocation (locally and at the provider). */
export const makeGrantAdministration = (ctx: BrokerContext) => {
  const { store, keyRing, servers, cache, protocol, settings, defaultTenant } = ctx

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

  return { grantStatus, listGrants, revoke }
}
