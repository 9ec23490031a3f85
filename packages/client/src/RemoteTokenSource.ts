import {
  InvalidRequest,
  Scopes,
  type TokenBroker,
  type TokenBrokerError,
  TokenSource
} from "@token-broker/core"
import { Duration, Effect, Layer } from "effect"
import * as BrokerClient from "./BrokerClient.js"
import { asUpstreamRejected } from "./internal/errors.js"

/**
 * core's `TokenSource` over a remote HTTP broker: an app switches between the broker in its own process
 * (`TokenSource.layerFromBroker`) and a remote one by config. The broker's answers come back as core's
 * typed errors (by `code`); the broker's own refusals of this app (bad credentials, policy, rate limit)
 * become `UpstreamRejected` / `UpstreamUnavailable`, and an unreachable broker `UpstreamUnavailable`.
 */
export interface RemoteTokenSourceOptions extends BrokerClient.BrokerClientOptions {
  /**
   * Background tokens kept in this process (default: on, at most 10,000): a token the broker answered
   * is served again by `cachedBackgroundToken` for the first half of the life it had left, and only
   * while it lives at least the request's `minTtl`; then the broker is asked again (it refreshes
   * early). A report of a refused token or a revoke through this source forgets the grant's tokens at
   * once, and a token asked for before it is not kept. `false`: every call asks the broker.
   */
  readonly tokenCache?:
    | false
    | {
        readonly maxEntries?: number | undefined
        /** The clock (epoch ms) the kept tokens' lives are measured by; `Date.now` by default. */
        readonly now?: (() => number) | undefined
      }
    | undefined
}

/** A background token kept by this source, served until `renewAt`. */
interface KeptToken {
  readonly token: TokenBroker.IssuedToken
  readonly renewAt: number
}

/**
 * The background tokens this source keeps, by grant and scope set (oldest first): `lookup` answers a
 * request synchronously, `keep` files a token the broker answered, `forget` drops a grant's tokens.
 */
const makeKeptTokens = (options: { readonly maxEntries: number; readonly now: () => number }) => {
  const kept = new Map<string, KeptToken>()
  // Counts the forgets: a token asked for before one is not kept when it arrives after it (its grant
  // may have been revoked meanwhile). A forget is rare (a refused token, a revoke), so one count for
  // every grant serves: an answer it turns away is still served to its caller.
  let forgets = 0
  // JSON arrays: one key per grant and scope set whatever characters they hold, and a grant's keys
  // all begin with its own prefix (`["tenant","subject","provider",`)
  const keyOf = (request: TokenBroker.BackgroundTokenRequest) =>
    JSON.stringify([
      request.tenant ?? null,
      request.subject,
      request.provider,
      request.scopes === undefined ? null : Scopes.normalize(request.scopes)
    ])
  const grantPrefix = (ref: TokenBroker.GrantRef) =>
    `${JSON.stringify([ref.tenant ?? null, ref.subject, ref.provider]).slice(0, -1)},`
  return {
    lookup: (request: TokenBroker.BackgroundTokenRequest): TokenBroker.IssuedToken | undefined => {
      const entry = kept.get(keyOf(request))
      if (entry === undefined) return undefined
      const now = options.now()
      const minTtl = request.minTtl === undefined ? 0 : Duration.toMillis(request.minTtl)
      return now < entry.renewAt && entry.token.expiresAt - now >= minTtl ? entry.token : undefined
    },
    /** How many forgets there have been: pass it to `keep` with the time the token was asked for. */
    forgets: () => forgets,
    keep: (
      request: TokenBroker.BackgroundTokenRequest,
      token: TokenBroker.IssuedToken,
      asked: { readonly at: number; readonly forgets: number }
    ) => {
      if (asked.forgets !== forgets) return
      const askedAt = asked.at
      const key = keyOf(request)
      kept.delete(key)
      const life = token.expiresAt - askedAt
      if (life <= 0) return
      kept.set(key, { token, renewAt: askedAt + life / 2 })
      if (kept.size > options.maxEntries) {
        const oldest = kept.keys().next()
        if (oldest.done !== true) kept.delete(oldest.value)
      }
    },
    forget: (ref: TokenBroker.GrantRef) => {
      forgets += 1
      const prefix = grantPrefix(ref)
      for (const key of kept.keys()) if (key.startsWith(prefix)) kept.delete(key)
    }
  }
}

type Narrow<E> = Exclude<E, BrokerClient.BrokerRequestError>

/** Maps the client's errors into a method's union: anything outside it becomes the closest member. */
const within =
  <Allowed extends TokenBrokerError>(provider: string, allowed: ReadonlyArray<Allowed["_tag"]>) =>
  (error: BrokerClient.ClientError): Allowed | Narrow<ReturnType<typeof asUpstreamRejected>> => {
    if (error._tag === "BrokerRequestError") return asUpstreamRejected(error, provider)
    if ((allowed as ReadonlyArray<string>).includes(error._tag)) return error as Allowed
    if (error._tag === "UpstreamUnavailable" || error._tag === "UpstreamRejected") return error
    return asUpstreamRejected(
      new BrokerClient.BrokerRequestError({ status: 502, code: error.code, message: error.message }),
      provider
    )
  }

export const make = (options: RemoteTokenSourceOptions): TokenSource.TokenSourceService => {
  const { tokenCache, ...clientOptions } = options
  const client = BrokerClient.make(clientOptions)
  const api = client.effect
  const now = (tokenCache === false ? undefined : tokenCache?.now) ?? Date.now
  const kept =
    tokenCache === false
      ? undefined
      : makeKeptTokens({ maxEntries: Math.max(1, tokenCache?.maxEntries ?? 10_000), now })
  /** Forgets the grant's kept tokens before `effect` (a refused token, a revoke) runs. */
  const forgetting = <A, E>(ref: TokenBroker.GrantRef, effect: Effect.Effect<A, E>) =>
    kept === undefined
      ? effect
      : Effect.zipRight(
          Effect.sync(() => kept.forget(ref)),
          effect
        )
  return {
    backgroundToken: (request) => {
      const asked: ReturnType<TokenSource.TokenSourceService["backgroundToken"]> = api
        .backgroundToken(request)
        .pipe(
          Effect.mapError(
            within(request.provider, [
              "ConsentRequired",
              "ProviderNotFound",
              "StorageUnavailable",
              "DecryptionFailed",
              "InvalidRequest"
            ] as const)
          )
        )
      if (kept === undefined) return asked
      return Effect.suspend(() => {
        const at = { at: now(), forgets: kept.forgets() }
        return Effect.tap(asked, (token) => kept.keep(request, token, at))
      })
    },
    ...(kept === undefined ? {} : { cachedBackgroundToken: kept.lookup }),
    sessionToken: (request) =>
      api
        .exchange({
          subjectToken: request.subjectToken,
          audience: request.audience ?? request.provider,
          scopes: request.scopes
        })
        .pipe(
          Effect.mapError((error) => BrokerClient.exchangeErrorOf(error, request.provider)),
          Effect.mapError((error) =>
            // 400: the scopes themselves; a 403 invalid_scope is this caller's policy (access_denied below)
            error._tag === "BrokerRequestError" && error.code === "invalid_scope" && error.status === 400
              ? new InvalidRequest({ field: "scopes", message: error.message })
              : error
          ),
          Effect.mapError(
            within(request.provider, [
              "InvalidSubjectToken",
              "AudienceMismatch",
              "ProviderNotFound",
              "InvalidRequest"
            ] as const)
          )
        ),
    startAuthorization: (request) =>
      api
        .authorize(request)
        .pipe(
          Effect.mapError(
            within(request.provider, ["ProviderNotFound", "StorageUnavailable", "InvalidRequest"] as const)
          )
        ),
    grantStatus: (ref) =>
      api
        .grant(ref)
        .pipe(Effect.mapError(within(ref.provider, ["StorageUnavailable", "InvalidRequest"] as const))),
    reportRejected: (report) =>
      forgetting(
        report,
        api
          .reportRejected(report)
          .pipe(Effect.mapError(within(report.provider, ["StorageUnavailable", "InvalidRequest"] as const)))
      ),
    revoke: (ref) =>
      forgetting(
        ref,
        api
          .revoke(ref)
          .pipe(
            Effect.mapError(
              within(ref.provider, [
                "ProviderNotFound",
                "StorageUnavailable",
                "DecryptionFailed",
                "InvalidRequest"
              ] as const)
            )
          )
      )
  }
}

/** The TokenSource of a remote broker. */
export const layerRemote = (options: RemoteTokenSourceOptions): Layer.Layer<TokenSource.TokenSource> =>
  Layer.sync(TokenSource.TokenSource, () => make(options))
