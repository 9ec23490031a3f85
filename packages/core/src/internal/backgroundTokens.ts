import { Duration, Effect, Option } from "effect"
import {
  type AccessTokenCacheService,
  type CachedToken,
  cacheKey,
  scopeVariant
} from "../AccessTokenCache.js"
import { ConsentRequired } from "../Errors.js"
import { grantKeyString } from "../Grant.js"
import * as Metrics from "../Metrics.js"
import * as Scopes from "../Scopes.js"
import type { BackgroundTokenRequest, IssuedToken, TokenBrokerService } from "../TokenBroker.js"
import type { BrokerContext } from "./brokerContext.js"
import { toGrantInfo } from "./grantInfo.js"
import { count, counterBy, tokenRequestsKey } from "./metrics.js"
import { makeReportRejected } from "./reportRejected.js"

/**
 * The cached token of a background request at `now`, counted in `token_requests_total{result="hit"}`;
 * undefined on a miss. No key string is built: the cache is read by the request's parts.
 */
export const makeCacheHits = (cache: AccessTokenCacheService, defaultTenant: string) => {
  const hitsOf = counterBy(tokenRequestsKey, { result: "hit" }, "provider")
  return (request: BackgroundTokenRequest, now: number): CachedToken | undefined => {
    // The entry's own `refreshAt` carries the early-refresh margin; the caller's minimum is checked here.
    const hit = cache.lookupSlot(
      request.tenant ?? defaultTenant,
      request.subject,
      request.provider,
      request.scopes === undefined ? "*" : scopeVariant(Scopes.normalize(request.scopes)),
      now,
      request.minTtl === undefined ? 0 : Duration.toMillis(request.minTtl)
    )
    if (hit !== undefined) hitsOf(request.provider).update(1)
    return hit
  }
}

/**
 * Background tokens (Flow 2): a token for a stored grant, from the in-process cache, else through the
 * refresh protocol inside the single flight; the report of a token the upstream API refused; and the
 * forced refresh that rotates the refresh token.
 */
export const makeBackgroundTokens = (ctx: BrokerContext) => {
  const { store, keyRing, cache, clock, protocol, flights, defaultTenant, keyOf } = ctx
  const reportRejection = makeReportRejected(
    { store, keyRing, cache },
    Math.max(1, ctx.rejectionsBeforeReconsent)
  )

  /**
   * Step 1, the in-process cache: synchronous, no lock, no I/O. A request that fails validation was
   * never cached, so validation waits for the miss path.
   */
  const hitAt = makeCacheHits(cache, defaultTenant)
  const cachedToken = (request: BackgroundTokenRequest): IssuedToken | undefined => {
    const hit = hitAt(request, clock.unsafeCurrentTimeMillis())
    if (hit === undefined) return undefined
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
        const scopes = request.scopes === undefined ? null : yield* Scopes.requested(request.scopes, "scopes")
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

  return { cachedToken, backgroundToken, reportRejected, rotateRefreshToken }
}
