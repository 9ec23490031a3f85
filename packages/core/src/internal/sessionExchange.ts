import { Clock, Effect } from "effect"
import { cacheKey } from "../AccessTokenCache.js"
import { InvalidRequest, InvalidSubjectToken, UpstreamRejected } from "../Errors.js"
import * as Metrics from "../Metrics.js"
import * as Scopes from "../Scopes.js"
import type { IssuedToken, SessionTokenRequest, TokenBrokerService } from "../TokenBroker.js"
import type { VerifiedToken } from "../TokenVerifier.js"
import type { BrokerContext } from "./brokerContext.js"
import { count, countNow } from "./metrics.js"
import { tokenDigest } from "./tokenDigest.js"
import { logUpstreamFailure } from "./upstreamLog.js"

/** What a session-token request asks for: its normalized scopes and the upstream audience. */
interface Target {
  readonly scopes: ReadonlyArray<string>
  readonly audience: string | undefined
}

/**
 * Session exchange (Flow 1): the user's own token, verified, exchanged at the provider (RFC 8693) for a
 * token for the upstream API. Exchanged tokens are cached in process only, never stored.
 */
export const makeSessionExchange = (ctx: BrokerContext) => {
  const { servers, cache, verifier, flights, clock, earlyRefreshMs, sessionAudience } = ctx
  const configs = new Map(servers.providers.map((provider) => [provider.id, provider]))

  /** The provider's config, the request's scopes and audience, validated: the errors of a bad request. */
  const targetOf = (request: SessionTokenRequest) =>
    Effect.gen(function* () {
      const { config } = yield* servers.get(request.provider)
      if (config.tokenExchange === undefined) {
        return yield* new InvalidRequest({
          field: "provider",
          message: `Provider "${request.provider}" is not configured for token exchange (tokenExchange)`
        })
      }
      const scopes = request.scopes === undefined ? [] : yield* Scopes.requested(request.scopes, "scopes")
      return { scopes, audience: request.audience ?? config.resource }
    })

  /**
   * `targetOf` in place, for a request it accepts: a configured provider with `tokenExchange` and
   * valid scopes. Anything else (undefined) goes through `targetOf`, which names the problem.
   */
  const knownTarget = (request: SessionTokenRequest): Target | undefined => {
    const config = configs.get(request.provider)
    if (config?.tokenExchange === undefined) return undefined
    const asked = request.scopes
    if (asked !== undefined && (asked.length === 0 || !asked.every(Scopes.isScopeToken))) return undefined
    return {
      scopes: asked === undefined ? [] : Scopes.normalize(asked),
      audience: request.audience ?? config.resource
    }
  }

  /** The session token of a verified subject token from the in-process cache, and its cache key. */
  const cachedFor = (request: SessionTokenRequest, target: Target) => {
    const sessionId = `session:${request.provider}:${tokenDigest(request.subjectToken)}`
    const tokenKey = cacheKey(sessionId, target.scopes, target.audience ?? null)
    const hit = cache.lookup(tokenKey, clock.unsafeCurrentTimeMillis(), earlyRefreshMs)
    const token: IssuedToken | undefined =
      hit === undefined
        ? undefined
        : {
            accessToken: hit.accessToken,
            tokenType: "Bearer",
            expiresAt: hit.expiresAt,
            scopes: hit.scopes,
            source: "exchange"
          }
    return { sessionId, tokenKey, token }
  }

  /**
   * The subject token verified (after its first time, the verifier's memo: no signature check), then the
   * session token from the cache - keyed by the digest the verifier took, so the token is hashed once per
   * request - else exchanged. A repeat request enters no span, generator or single flight.
   */
  const lookupOrExchange = (request: SessionTokenRequest, target: Target) =>
    Effect.flatMap(verifier.verify(request.subjectToken, { audience: sessionAudience }), (verified) => {
      const { sessionId, tokenKey, token } = cachedFor(request, target)
      if (token !== undefined) {
        return Effect.as(
          count(Metrics.tokenExchanges, { provider: request.provider, outcome: "cached" }),
          token
        )
      }
      return flights
        .run(tokenKey, exchange(request, target, { sessionId, tokenKey, verified }), Effect.void)
        .pipe(Effect.withSpan("TokenBroker.sessionToken", { attributes: { provider: request.provider } }))
    })

  /**
   * `lookupOrExchange` without the runtime, for a request that would be a cache hit there: a known
   * target, a verification the verifier remembers (the same memo and clock `verify` reads first) and a
   * cached session token. Anything else is undefined, and `sessionToken` decides.
   */
  const cachedSessionToken: TokenBrokerService["cachedSessionToken"] = (request) => {
    const target = knownTarget(request)
    if (target === undefined || verifier.remembered === undefined) return undefined
    if (verifier.remembered(request.subjectToken, { audience: sessionAudience }) === undefined) {
      return undefined
    }
    const { token } = cachedFor(request, target)
    if (token !== undefined)
      countNow(Metrics.tokenExchanges, { provider: request.provider, outcome: "cached" })
    return token
  }

  const exchange = (
    request: SessionTokenRequest,
    { scopes, audience }: Target,
    session: { readonly sessionId: string; readonly tokenKey: string; readonly verified: VerifiedToken }
  ) =>
    Effect.gen(function* () {
      const client = yield* servers.get(request.provider)
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
      const expiresAt = Math.min(set.expiresAt ?? arrived + 60_000, session.verified.expiresAt)
      const token: IssuedToken = {
        accessToken: set.accessToken,
        tokenType: "Bearer",
        expiresAt,
        scopes: set.scopes ?? scopes,
        source: "exchange"
      }
      yield* cache.set(session.sessionId, session.tokenKey, {
        accessToken: token.accessToken,
        expiresAt,
        scopes: token.scopes
      })
      yield* count(Metrics.tokenExchanges, { provider: request.provider, outcome: "success" })
      return token
    })

  const sessionToken: TokenBrokerService["sessionToken"] = (request) =>
    Effect.suspend(() => {
      const known = knownTarget(request)
      return known === undefined
        ? Effect.flatMap(targetOf(request), (target) => lookupOrExchange(request, target))
        : lookupOrExchange(request, known)
    }).pipe(
      Effect.tapError((error) =>
        count(Metrics.tokenExchanges, { provider: request.provider, outcome: error.code })
      )
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

  return { sessionToken, cachedSessionToken }
}
