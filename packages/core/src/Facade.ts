import { Cause, type Duration, Effect, Exit, Layer, ManagedRuntime, Option, Redacted } from "effect"
import * as AccessTokenCache from "./AccessTokenCache.js"
import * as AuthorizationServer from "./AuthorizationServer.js"
import { InvalidSubjectToken, type TokenBrokerError } from "./Errors.js"
import type { GrantFilter } from "./Grant.js"
import type { GrantStore } from "./GrantStore.js"
import { makeCacheHits } from "./internal/backgroundTokens.js"
import { DEFAULT_TENANT } from "./internal/brokerContext.js"
import { type CoarseClockOptions, makeCoarseClock } from "./internal/coarseClock.js"
import type { KeyRing } from "./KeyRing.js"
import type { ProviderConfig } from "./Provider.js"
import * as TokenBroker from "./TokenBroker.js"
import { TokenVerifier } from "./TokenVerifier.js"

/**
 * The Promise facade for apps that do not use Effect: the same services, run by one runtime. Every
 * method returns a Promise that rejects with the broker's own error instances (`_tag` and `code` kept,
 * `instanceof Error` true), never a wrapped failure.
 */
export interface TokenBrokerClient {
  readonly backgroundToken: (request: {
    readonly tenant?: string
    readonly subject: string
    readonly provider: string
    readonly scopes?: ReadonlyArray<string>
    readonly minTtl?: Duration.DurationInput
  }) => Promise<PlainToken>
  readonly sessionToken: (request: {
    readonly subjectToken: string
    readonly provider: string
    readonly scopes?: ReadonlyArray<string>
    readonly audience?: string
  }) => Promise<PlainToken>
  readonly startAuthorization: (
    request: TokenBroker.StartAuthorizationRequest
  ) => Promise<{ readonly authorizationUrl: URL; readonly expiresAt: number }>
  readonly completeAuthorization: (
    callback: URL | URLSearchParams | Readonly<Record<string, string>>
  ) => Promise<TokenBroker.CompletedAuthorization>
  readonly grantStatus: (ref: TokenBroker.GrantRef) => Promise<TokenBroker.GrantInfo | undefined>
  readonly listGrants: (request?: {
    readonly filter?: GrantFilter
    readonly cursor?: string | null
    readonly limit?: number
  }) => Promise<TokenBroker.GrantList>
  readonly revoke: (ref: TokenBroker.GrantRef) => Promise<TokenBroker.RevokeResult>
  /** The upstream API refused (401) this access token: drop it; the next call refreshes. */
  readonly reportRejected: (
    request: TokenBroker.GrantRef & { readonly accessToken: string }
  ) => Promise<TokenBroker.GrantInfo | undefined>
  readonly rotateRefreshToken: (ref: TokenBroker.GrantRef) => Promise<TokenBroker.GrantInfo>
  /** Stops the runtime: in-flight refreshes are interrupted, pools and files closed. */
  readonly close: () => Promise<void>
}

/**
 * A token for non-Effect callers. `accessToken` is the bearer value: never log it. Frozen: a cache hit
 * answers the same object to every caller until the cached token is replaced.
 */
export interface PlainToken {
  readonly accessToken: string
  readonly tokenType: "Bearer"
  readonly expiresAt: number
  readonly scopes: ReadonlyArray<string>
  readonly source: TokenBroker.IssuedToken["source"]
}

export interface CreateTokenBrokerOptions {
  /** The storage layer, e.g. `GrantStore.layerMemory` or `@token-broker/storage-sqlite`'s `layer(...)`. */
  readonly store: Layer.Layer<GrantStore, unknown>
  /** The key ring layer, e.g. `KeyRing.layerLocal({ keys })`. */
  readonly keyRing: Layer.Layer<KeyRing, unknown>
  readonly providers: ReadonlyArray<ProviderConfig>
  /** Verifies session (Flow 1) tokens; required for `sessionToken`. */
  readonly verifier?: Layer.Layer<TokenVerifier, unknown> | undefined
  readonly broker?: TokenBroker.TokenBrokerOptions | undefined
  readonly cache?: AccessTokenCache.AccessTokenCacheOptions | undefined
}

const toPlain = (token: TokenBroker.IssuedToken): PlainToken => ({
  accessToken: Redacted.value(token.accessToken),
  tokenType: token.tokenType,
  expiresAt: token.expiresAt,
  scopes: token.scopes,
  source: token.source
})

export const createTokenBroker = (options: CreateTokenBrokerOptions): Promise<TokenBrokerClient> =>
  makeTokenBrokerClient(options)

/** What a test controls of the facade's time: the runtime's time services (a TestClock) and the hit clock. */
export interface FacadeTime {
  readonly services?: Layer.Layer<never> | undefined
  readonly hitClock?: CoarseClockOptions | undefined
}

/** `createTokenBroker` with its time under a test's control; not exported from the package. */
export const makeTokenBrokerClient = async (
  options: CreateTokenBrokerOptions,
  time: FacadeTime = {}
): Promise<TokenBrokerClient> => {
  const verifier = options.verifier ?? refusingVerifier
  const layer = TokenBroker.layer(options.broker).pipe(
    Layer.provideMerge(
      Layer.mergeAll(
        options.store,
        options.keyRing,
        AuthorizationServer.layer(options.providers),
        AccessTokenCache.layer(options.cache),
        verifier
      )
    )
  )
  const runtime = ManagedRuntime.make(
    time.services === undefined ? layer : Layer.provideMerge(layer, time.services)
  )
  const [broker, cache, clock] = await run(
    runtime,
    Effect.all([TokenBroker.TokenBroker, AccessTokenCache.AccessTokenCache, Effect.clock])
  )
  // A cache hit settles without entering the runtime, checked against a coarse upper bound of the
  // runtime's clock, and answers the one frozen answer of its cache entry. Near the early refresh, the
  // bound misses where the exact clock would not: the runtime's path then answers.
  const hitClock = makeCoarseClock(() => clock.unsafeCurrentTimeMillis(), time.hitClock)
  const hitAt = makeCacheHits(cache, options.broker?.tenant ?? DEFAULT_TENANT)
  const answers = new WeakMap<AccessTokenCache.CachedToken, PlainToken>()
  const answerOf = (hit: AccessTokenCache.CachedToken): PlainToken => {
    let answer = answers.get(hit)
    if (answer === undefined) {
      answer = Object.freeze({
        accessToken: Redacted.value(hit.accessToken),
        tokenType: "Bearer",
        expiresAt: hit.expiresAt,
        scopes: hit.scopes,
        source: "cache"
      })
      answers.set(hit, answer)
    }
    return answer
  }
  return {
    backgroundToken: (request) => {
      const hit = hitAt(request, hitClock.upperBound())
      return hit !== undefined
        ? Promise.resolve(answerOf(hit))
        : run(runtime, Effect.map(broker.backgroundToken(request), toPlain))
    },
    sessionToken: (request) =>
      run(
        runtime,
        Effect.map(
          broker.sessionToken({ ...request, subjectToken: Redacted.make(request.subjectToken) }),
          toPlain
        )
      ),
    startAuthorization: (request) =>
      run(
        runtime,
        Effect.map(broker.startAuthorization(request), ({ authorizationUrl, expiresAt }) => ({
          authorizationUrl,
          expiresAt
        }))
      ),
    completeAuthorization: (callback) => run(runtime, broker.completeAuthorization(callback)),
    grantStatus: (ref) => run(runtime, Effect.map(broker.grantStatus(ref), Option.getOrUndefined)),
    listGrants: (request = {}) => run(runtime, broker.listGrants(request)),
    revoke: (ref) => run(runtime, broker.revoke(ref)),
    reportRejected: (request) =>
      run(
        runtime,
        Effect.map(
          broker.reportRejected({ ...request, accessToken: Redacted.make(request.accessToken) }),
          Option.getOrUndefined
        )
      ),
    rotateRefreshToken: (ref) => run(runtime, broker.rotateRefreshToken(ref)),
    close: () => {
      hitClock.close()
      return runtime.dispose()
    }
  }
}

/** Runs an effect and settles with its value, or rejects with the typed error itself. */
const run = <A, E, R>(runtime: ManagedRuntime.ManagedRuntime<R, unknown>, effect: Effect.Effect<A, E, R>) =>
  runtime.runPromiseExit(effect).then((exit) => {
    if (Exit.isSuccess(exit)) return exit.value
    throw Cause.squash(exit.cause)
  })

/** Without a configured verifier, session tokens are refused with a clear error. */
const refusingVerifier: Layer.Layer<TokenVerifier> = Layer.succeed(TokenVerifier, {
  verify: () =>
    Effect.fail(
      new InvalidSubjectToken({
        reason: "unverifiable",
        message: "No token verifier is configured: pass `verifier` to createTokenBroker to use session tokens"
      })
    )
})

export type { TokenBrokerError }
