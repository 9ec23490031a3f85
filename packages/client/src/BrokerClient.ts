import {
  type BackgroundTokenError,
  type GrantFilter,
  InvalidSubjectToken,
  linkedSignal,
  ProviderNotFound,
  Scopes,
  type TokenBroker,
  type TokenBrokerError,
  UpstreamRejected,
  UpstreamUnavailable
} from "@token-broker/core"
import { Cause, Data, Duration, Effect, Exit, Option, Redacted } from "effect"
import { z } from "zod"
import { coreErrorOf, type ErrorContext } from "./internal/errors.js"

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
}

/** The broker refused a request for a reason of its own (authentication, policy, rate limit, routing). */
export class BrokerRequestError extends Data.TaggedError("BrokerRequestError")<{
  readonly status: number
  /** The problem's `code` (`unauthorized`, `forbidden`, `rate_limited`, `grant_not_found`, ...) or OAuth `error`. */
  readonly code: string
  readonly message: string
  readonly reason?: string | undefined
  readonly retryAfter?: Duration.Duration | undefined
}> {}

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

const TokenView = z.object({
  accessToken: z.string().min(1),
  tokenType: z.literal("Bearer"),
  expiresAt: z.string(),
  scopes: z.array(z.string()),
  source: z.enum(["cache", "store", "refresh", "exchange"])
})

const time = z.string().transform((text) => Date.parse(text))
const nullableTime = time.nullable()

const GrantView = z.object({
  tenant: z.string(),
  subject: z.string(),
  provider: z.string(),
  version: z.number(),
  status: z.enum(["active", "reconsent_required"]),
  scopes: z.array(z.string()),
  identity: z.object({ issuer: z.string(), subject: z.string() }).nullable(),
  refreshTokenExpiresAt: nullableTime,
  accessTokenExpiresAt: nullableTime,
  createdAt: time,
  updatedAt: time,
  lastRefreshedAt: nullableTime,
  failureCount: z.number(),
  lastErrorCode: z.string().nullable()
})

const GrantList = z.object({ items: z.array(GrantView), nextCursor: z.string().nullable() })

const RevokeView = z.object({
  removed: z.boolean(),
  upstream: z.enum(["revoked", "failed", "not_supported", "not_attempted"]),
  upstreamError: z.object({ code: z.string(), message: z.string() }).optional(),
  // absent from brokers before the access tokens were revoked too
  accessTokens: z.enum(["revoked", "none", "not_supported", "failed", "not_attempted"]).optional(),
  revokedAtProvider: z.object({ refreshToken: z.boolean(), accessTokens: z.number().int() }).optional()
})

const AuthorizeView = z.object({ authorizationUrl: z.url(), expiresAt: z.string() })

const ExchangeView = z.object({
  access_token: z.string().min(1),
  token_type: z.string(),
  expires_in: z.number(),
  scope: z.string().optional()
})

const TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
const ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"

const grantPath = (ref: { readonly subject: string; readonly provider: string }) =>
  `/v1/grants/${encodeURIComponent(ref.subject)}/${encodeURIComponent(ref.provider)}`

const toIssued = (view: z.output<typeof TokenView>): TokenBroker.IssuedToken => ({
  accessToken: Redacted.make(view.accessToken),
  tokenType: "Bearer",
  expiresAt: Date.parse(view.expiresAt),
  scopes: view.scopes,
  source: view.source
})

interface Answer {
  readonly status: number
  readonly body: Readonly<Record<string, unknown>>
  readonly retryAfter: Duration.Duration | undefined
}

export const make = (options: BrokerClientOptions): BrokerClient => {
  const base = options.url.replace(/\/+$/, "")
  const secret =
    typeof options.clientSecret === "string" ? options.clientSecret : Redacted.value(options.clientSecret)
  const encode = (text: string) => encodeURIComponent(text).replace(/%20/g, "+")
  const authorization = `Basic ${Buffer.from(`${encode(options.clientId)}:${encode(secret)}`).toString("base64")}`
  const timeoutMs = Duration.toMillis(options.timeout ?? "10 seconds")
  const doFetch = options.fetch ?? fetch

  /** One request; an unreachable broker is UpstreamUnavailable (retryable), never a defect. */
  const request = (
    method: string,
    path: string,
    context: ErrorContext,
    body?: { readonly json: unknown } | { readonly form: URLSearchParams }
  ): Effect.Effect<Answer, UpstreamUnavailable> =>
    Effect.tryPromise({
      try: async (signal) => {
        const headers: Record<string, string> = { authorization, accept: "application/json" }
        let payload: string | undefined
        if (body !== undefined && "json" in body) {
          headers["content-type"] = "application/json"
          payload = JSON.stringify(body.json)
        } else if (body !== undefined) {
          headers["content-type"] = "application/x-www-form-urlencoded"
          payload = body.form.toString()
        }
        const deadline = linkedSignal([signal], timeoutMs)
        let text: string
        let response: Response
        try {
          response = await doFetch(`${base}${path}`, {
            method,
            headers,
            ...(payload === undefined ? {} : { body: payload }),
            signal: deadline.signal
          })
          text = await response.text()
        } finally {
          deadline.done()
        }
        let parsed: unknown = {}
        try {
          parsed = text.length === 0 ? {} : JSON.parse(text)
        } catch {
          parsed = {}
        }
        const retryAfterText = response.headers.get("retry-after")
        const retrySeconds = retryAfterText === null ? Number.NaN : Number(retryAfterText)
        return {
          status: response.status,
          body: (typeof parsed === "object" && parsed !== null ? parsed : {}) as Record<string, unknown>,
          retryAfter: Number.isFinite(retrySeconds) ? Duration.seconds(retrySeconds) : undefined
        }
      },
      catch: (cause) =>
        new UpstreamUnavailable({
          provider: context.provider ?? "broker",
          reason: cause instanceof Error && cause.name === "TimeoutError" ? "timeout" : "network",
          message: `The token broker at ${base} could not be reached`
        })
    })

  /** A non-2xx answer: core's error by `code`, else the broker's own refusal. */
  const failure = (answer: Answer, context: ErrorContext): ClientError => {
    const core = coreErrorOf(answer.body, context)
    if (core !== undefined) return core
    const code =
      typeof answer.body.code === "string"
        ? answer.body.code
        : typeof answer.body.error === "string"
          ? answer.body.error
          : `http_${answer.status}`
    const message =
      typeof answer.body.detail === "string"
        ? answer.body.detail
        : typeof answer.body.error_description === "string"
          ? answer.body.error_description
          : `HTTP ${answer.status}`
    return new BrokerRequestError({
      status: answer.status,
      code,
      message,
      reason: typeof answer.body.reason === "string" ? answer.body.reason : undefined,
      retryAfter: answer.retryAfter
    })
  }

  const decode = <S extends z.ZodType>(
    schema: S,
    answer: Answer
  ): Effect.Effect<z.output<S>, BrokerRequestError> => {
    const parsed = schema.safeParse(answer.body)
    return parsed.success
      ? Effect.succeed(parsed.data)
      : Effect.fail(
          new BrokerRequestError({
            status: answer.status,
            code: "invalid_response",
            message: "The broker's answer does not have the expected shape"
          })
        )
  }

  const call = <S extends z.ZodType>(
    schema: S,
    method: string,
    path: string,
    context: ErrorContext,
    body?: { readonly json: unknown } | { readonly form: URLSearchParams }
  ): Effect.Effect<z.output<S>, ClientError> =>
    Effect.flatMap(request(method, path, context, body), (answer) =>
      answer.status >= 200 && answer.status < 300
        ? decode(schema, answer)
        : Effect.fail(failure(answer, context))
    )

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
