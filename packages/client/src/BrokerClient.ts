import {
  type BackgroundTokenError,
  type GrantFilter,
  InvalidSubjectToken,
  ProviderNotFound,
  Scopes,
  type TokenBroker,
  type TokenBrokerError,
  UpstreamRejected,
  UpstreamUnavailable
} from "@token-broker/core"
import { Cause, Duration, Effect, Exit, Option, Redacted } from "effect"
import { BrokerRequestError } from "./BrokerRequestError.js"
import {
  ACCESS_TOKEN_TYPE,
  AuthorizeView,
  ExchangeView,
  GrantList,
  GrantView,
  grantPath,
  RevokeView,
  TOKEN_EXCHANGE,
  TokenView,
  toIssued
} from "./internal/answers.js"
import { makeTransport } from "./internal/transport.js"

/**
 * A typed client of the token-broker HTTP API. Every method exists twice: as an Effect (`client.effect`)
 * failing with core's typed errors (mapped back from problem+json by `code`) or `BrokerRequestError`, and
 * as a Promise (`client.backgroundToken(...)`) rejecting with the same error instances.
 */
export interface BrokerClientOptions {
  /** The broker's base URL, e.g. `https://broker.example.com`. */
  readonly url: string
  /** This app's caller id and secret at the broker. */
  readonly clientId: string
  readonly clientSecret: string | Redacted.Redacted<string>
  /** Time budget of one request (default 10 seconds). */
  readonly timeout?: Duration.DurationInput | undefined
  /** A fetch implementation (default: the global one). */
  readonly fetch?: typeof fetch | undefined
  /**
   * Sends one request and reads its whole answer, in place of `fetch` (which costs each request a WHATWG
   * Request and Response and web streams): e.g. undici's `request` on a kept-alive pool. It must reject
   * when `signal` aborts, with the signal's reason (a timeout is a `TimeoutError`).
   */
  readonly send?: ((request: BrokerHttpRequest) => Promise<BrokerHttpAnswer>) | undefined
}

/** One request of the client to the broker, for `BrokerClientOptions.send`. */
export interface BrokerHttpRequest {
  readonly url: string
  readonly method: string
  readonly headers: Readonly<Record<string, string>>
  /** JSON or a form, already encoded (the content-type header says which); undefined: no body. */
  readonly body: string | undefined
  /** Aborts at the client's time budget or when the call is interrupted. */
  readonly signal: AbortSignal
}

/** What the client reads of the broker's answer. */
export interface BrokerHttpAnswer {
  readonly status: number
  /** The whole body ("" when there is none). */
  readonly text: string
  /** The Retry-After header, when the answer has one. */
  readonly retryAfter: string | undefined
}

export { BrokerRequestError }

export type ClientError = TokenBrokerError | BrokerRequestError

export interface ExchangeRequest {
  /** The user's own access token. */
  readonly subjectToken: string | Redacted.Redacted<string>
  /** A provider id or its resource. */
  readonly audience?: string | undefined
  readonly resource?: string | undefined
  readonly scopes?: ReadonlyArray<string> | undefined
}

export interface ListGrantsRequest {
  readonly filter?: Omit<GrantFilter, "tenant"> | undefined
  readonly cursor?: string | null | undefined
  readonly limit?: number | undefined
}

type BackgroundError = BackgroundTokenError | BrokerRequestError

export interface BrokerClientEffects {
  readonly backgroundToken: (
    request: TokenBroker.BackgroundTokenRequest
  ) => Effect.Effect<TokenBroker.IssuedToken, BackgroundError | ClientError>
  readonly exchange: (request: ExchangeRequest) => Effect.Effect<TokenBroker.IssuedToken, ClientError>
  readonly listGrants: (request?: ListGrantsRequest) => Effect.Effect<TokenBroker.GrantList, ClientError>
  /** None when the subject has no grant for the provider. */
  readonly grant: (
    ref: TokenBroker.GrantRef
  ) => Effect.Effect<Option.Option<TokenBroker.GrantInfo>, ClientError>
  readonly revoke: (ref: TokenBroker.GrantRef) => Effect.Effect<TokenBroker.RevokeResult, ClientError>
  /**
   * The upstream API refused (401) a token this broker issued: the broker drops it, so the next
   * `backgroundToken` refreshes. None when the subject has no grant for the provider.
   */
  readonly reportRejected: (
    report: TokenBroker.RejectedTokenReport
  ) => Effect.Effect<Option.Option<TokenBroker.GrantInfo>, ClientError>
  readonly authorize: (
    request: TokenBroker.StartAuthorizationRequest
  ) => Effect.Effect<{ readonly authorizationUrl: URL; readonly expiresAt: number }, ClientError>
}

export interface BrokerClient {
  readonly effect: BrokerClientEffects
  readonly backgroundToken: (request: TokenBroker.BackgroundTokenRequest) => Promise<TokenBroker.IssuedToken>
  readonly exchange: (request: ExchangeRequest) => Promise<TokenBroker.IssuedToken>
  readonly listGrants: (request?: ListGrantsRequest) => Promise<TokenBroker.GrantList>
  readonly grant: (ref: TokenBroker.GrantRef) => Promise<TokenBroker.GrantInfo | undefined>
  readonly revoke: (ref: TokenBroker.GrantRef) => Promise<TokenBroker.RevokeResult>
  readonly reportRejected: (
    report: TokenBroker.RejectedTokenReport
  ) => Promise<TokenBroker.GrantInfo | undefined>
  readonly authorize: (
    request: TokenBroker.StartAuthorizationRequest
  ) => Promise<{ readonly authorizationUrl: URL; readonly expiresAt: number }>
}

export const make = (options: BrokerClientOptions): BrokerClient => {
  const { request, failure, decode, call } = makeTransport(options)

  const effect: BrokerClientEffects = {
    backgroundToken: (req) => {
      const minTtl =
        req.minTtl === undefined ? undefined : Math.ceil(Duration.toSeconds(Duration.decode(req.minTtl)))
      return Effect.map(
        call(TokenView, "POST", `${grantPath(req)}/token`, req, {
          json: {
            ...(req.scopes === undefined ? {} : { scopes: req.scopes }),
            ...(minTtl === undefined ? {} : { minTtl })
          }
        }),
        toIssued
      )
    },
    exchange: (req) => {
      const form = new URLSearchParams({
        grant_type: TOKEN_EXCHANGE,
        subject_token:
          typeof req.subjectToken === "string" ? req.subjectToken : Redacted.value(req.subjectToken),
        subject_token_type: ACCESS_TOKEN_TYPE,
        requested_token_type: ACCESS_TOKEN_TYPE
      })
      if (req.audience !== undefined) form.set("audience", req.audience)
      if (req.resource !== undefined) form.set("resource", req.resource)
      if (req.scopes !== undefined && req.scopes.length > 0) form.set("scope", req.scopes.join(" "))
      const started = Date.now()
      return Effect.map(
        call(ExchangeView, "POST", "/oauth/token", { provider: req.audience ?? req.resource }, { form }),
        (view) => ({
          accessToken: Redacted.make(view.access_token),
          tokenType: "Bearer" as const,
          expiresAt: started + view.expires_in * 1000,
          scopes: view.scope === undefined ? [] : Scopes.split(view.scope),
          source: "exchange" as const
        })
      )
    },
    listGrants: (req = {}) => {
      const query = new URLSearchParams()
      if (req.filter?.subject !== undefined) query.set("subject", req.filter.subject)
      if (req.filter?.provider !== undefined) query.set("provider", req.filter.provider)
      if (req.filter?.status !== undefined) query.set("status", req.filter.status)
      if (req.limit !== undefined) query.set("limit", String(req.limit))
      if (req.cursor !== undefined && req.cursor !== null) query.set("cursor", req.cursor)
      const text = query.toString()
      return call(GrantList, "GET", `/v1/grants${text === "" ? "" : `?${text}`}`, {})
    },
    grant: (ref) =>
      call(GrantView, "GET", grantPath(ref), ref).pipe(
        Effect.map(Option.some),
        Effect.catchIf(
          (e): e is BrokerRequestError => e._tag === "BrokerRequestError" && e.code === "grant_not_found",
          () => Effect.succeed(Option.none())
        )
      ),
    revoke: (ref) =>
      Effect.map(call(RevokeView, "DELETE", grantPath(ref), ref), (view) => ({
        removed: view.removed,
        upstream: view.upstream,
        upstreamError: view.upstreamError,
        accessTokens: view.accessTokens ?? "not_attempted",
        revokedAtProvider: view.revokedAtProvider ?? {
          refreshToken: view.upstream === "revoked",
          accessTokens: 0
        }
      })),
    reportRejected: (report) =>
      Effect.flatMap(
        request("POST", `${grantPath(report)}/token/rejected`, report, {
          json: { accessToken: Redacted.value(report.accessToken) }
        }),
        (answer) =>
          answer.status === 204
            ? Effect.succeed(Option.none())
            : answer.status >= 200 && answer.status < 300
              ? Effect.map(decode(GrantView, answer), Option.some)
              : Effect.fail(failure(answer, report))
      ),
    authorize: (req) =>
      Effect.map(
        call(AuthorizeView, "POST", `${grantPath(req)}/authorize`, req, {
          json: {
            ...(req.scopes === undefined ? {} : { scopes: req.scopes }),
            ...(req.returnTo === undefined ? {} : { returnTo: req.returnTo })
          }
        }),
        (view) => ({
          authorizationUrl: new URL(view.authorizationUrl),
          expiresAt: Date.parse(view.expiresAt)
        })
      )
  }

  const run = <A, E>(program: Effect.Effect<A, E>): Promise<A> =>
    Effect.runPromiseExit(program).then((exit) => {
      if (Exit.isSuccess(exit)) return exit.value
      throw Cause.squash(exit.cause)
    })

  return {
    effect,
    backgroundToken: (req) => run(effect.backgroundToken(req)),
    exchange: (req) => run(effect.exchange(req)),
    listGrants: (req) => run(effect.listGrants(req)),
    grant: (ref) => run(Effect.map(effect.grant(ref), Option.getOrUndefined)),
    revoke: (ref) => run(effect.revoke(ref)),
    reportRejected: (report) => run(Effect.map(effect.reportRejected(report), Option.getOrUndefined)),
    authorize: (req) => run(effect.authorize(req))
  }
}

/** How an RFC 6749 error of the token endpoint reads as core's errors (for the TokenSource). */
export const exchangeErrorOf = (error: ClientError, provider: string): ClientError => {
  if (error._tag !== "BrokerRequestError") return error
  if (error.code === "invalid_request" && error.message.startsWith("subject_token")) {
    return new InvalidSubjectToken({ reason: "inactive", message: error.message })
  }
  if (error.code === "invalid_target" && error.status === 400)
    return new ProviderNotFound({ provider, message: error.message })
  if (error.code === "server_error" && error.status === 502) {
    // the broker answers 502 at its token endpoint only when the provider refused the exchange: a
    // configuration problem, not worth a retry (its description names the provider's error)
    return new UpstreamRejected({ provider, error: "upstream_rejected", message: error.message })
  }
  if (error.code === "temporarily_unavailable") {
    return new UpstreamUnavailable({
      provider,
      reason: "server_error",
      retryAfter: error.retryAfter,
      message: error.message
    })
  }
  return error
}
