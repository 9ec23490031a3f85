import { Clock, Effect, Redacted } from "effect"
import { cacheKey } from "../AccessTokenCache.js"
import { InvalidRequest, InvalidSubjectToken, UpstreamRejected } from "../Errors.js"
import * as Metrics from "../Metrics.js"
import * as Scopes from "../Scopes.js"
import type { IssuedToken, TokenBrokerService } from "../TokenBroker.js"
import type { BrokerContext } from "./brokerContext.js"
import { count } from "./metrics.js"
import { sha256 } from "./random.js"
import { logUpstreamFailure } from "./upstreamLog.js"

/**
 * Session exchange (Flow 1): the user's own token, verified, exchanged at the provider (RFC 8693) for a
 * token for the upstream API. Exchanged tokens are cached in process only, never stored.
 */
export const makeSessionExchange = (ctx: BrokerContext) => {
  const { servers, cache, verifier, flights, earlyRefreshMs, sessionAudience } = ctx

  const sessionToken: TokenBrokerService["sessionToken"] = (request) =>
    Effect.gen(function* () {
      const client = yield* servers.get(request.provider)
      if (client.config.tokenExchange === undefined) {
        return yield* new InvalidRequest({
          field: "provider",
          message: `Provider "${request.provider}" is not configured for token exchange (tokenExchange)`
        })
      }
      const scopes = request.scopes === undefined ? [] : yield* Scopes.requested(request.scopes, "scopes")
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
          client.config.tokenExchange?.actorToken === true ? yield* actorTokenOf(request.provider) : undefined
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

  return { sessionToken }
}
