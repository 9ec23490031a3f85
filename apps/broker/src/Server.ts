import { createHash, randomUUID, timingSafeEqual } from "node:crypto"
import rateLimit from "@fastify/rate-limit"
import {
  type BrokerLayerError,
  type BrokerServices,
  type CallerPolicy,
  type Config,
  httpServerOptions
} from "@token-broker/config"
import {
  AuthorizationServer,
  consentFailure,
  type GrantStatus,
  GrantStore,
  type ProviderConfig,
  RESULT_PAGE_HEADERS,
  TokenBroker,
  type TokenBrokerError,
  TokenVerifier
} from "@token-broker/core"
import { Cause, Duration, Effect, Exit, type ManagedRuntime, Metric, Option, Redacted } from "effect"
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify"
import type { Logger } from "pino"
import type { z } from "zod"
import {
  allowsAllProviders,
  allowsAllSubjects,
  allowsAnyScope,
  allowsProvider,
  allowsSubject,
  allowsSubjectToken,
  type CallerAuth,
  deniedScope,
  makeCallerAuth,
  parseBasic
} from "./Callers.js"
import { lazyChildLogger } from "./internal/requestLogger.js"
import { resultPage } from "./internal/resultPage.js"
import { makeHttpMetrics } from "./Metrics.js"
import { docsPage, openApiDocument } from "./OpenApi.js"
import {
  forbidden,
  HttpOAuthError,
  HttpProblem,
  httpProblem,
  invalidRequest,
  type OAuthError,
  oauthErrorOf,
  type Problem,
  problemBody,
  problemOf,
  unauthorized
} from "./Problems.js"
import {
  ACCESS_TOKEN_TYPE,
  AuthorizeBody,
  BackgroundTokenBody,
  describeZodError,
  GrantPath,
  ListGrantsQuery,
  RejectedTokenBody,
  TOKEN_EXCHANGE,
  TokenExchangeForm
} from "./Schemas.js"

declare module "fastify" {
  interface FastifyRequest {
    caller: CallerPolicy | null
  }
  interface FastifyContextConfig {
    /** "caller": a registered caller must authenticate. */
    auth?: "caller" | "none"
    /** How errors are written: RFC 9457 problem+json, or RFC 6749 at the token endpoint. */
    errors?: "problem" | "oauth"
  }
}

export type BrokerRuntime = ManagedRuntime.ManagedRuntime<BrokerServices, BrokerLayerError>

export interface BrokerServerOptions {
  readonly config: Config
  /** The one runtime of this server: every core use case runs in it. */
  readonly runtime: BrokerRuntime
  readonly logger: Logger
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/

const iso = (epochMs: number | null) => (epochMs === null ? null : new Date(epochMs).toISOString())

const tokenView = (token: TokenBroker.IssuedToken, now: number) => ({
  accessToken: Redacted.value(token.accessToken),
  tokenType: token.tokenType,
  expiresIn: Math.max(0, Math.floor((token.expiresAt - now) / 1000)),
  expiresAt: new Date(token.expiresAt).toISOString(),
  scopes: token.scopes,
  source: token.source
})

const grantView = (grant: TokenBroker.GrantInfo) => ({
  tenant: grant.tenant,
  subject: grant.subject,
  provider: grant.provider,
  version: grant.version,
  status: grant.status,
  scopes: grant.scopes,
  identity: grant.identity,
  refreshTokenExpiresAt: iso(grant.refreshTokenExpiresAt),
  accessTokenExpiresAt: iso(grant.accessTokenExpiresAt),
  createdAt: new Date(grant.createdAt).toISOString(),
  updatedAt: new Date(grant.updatedAt).toISOString(),
  lastRefreshedAt: iso(grant.lastRefreshedAt),
  failureCount: grant.failureCount,
  lastErrorCode: grant.lastErrorCode
})

/** Parses with zod; a failure is a 400 naming the field. */
const parse = <S extends z.ZodType>(schema: S, value: unknown, where: string): z.output<S> => {
  const result = schema.safeParse(value)
  if (result.success) return result.data
  const { field, message } = describeZodError(result.error, where)
  throw invalidRequest(field, message)
}

const oauthError = (status: number, error: string, description: string, headers?: Record<string, string>) =>
  new HttpOAuthError({ status, error, description, headers })

const isTokenBrokerError = (error: unknown): error is TokenBrokerError =>
  typeof error === "object" && error !== null && "_tag" in error && "code" in error

/**
 * Builds the HTTP broker on fastify from its config and runtime (not listening yet: tests listen on
 * port 0). Closing the app lets in-flight requests finish; the caller disposes the runtime after.
 */
export const buildServer = async (options: BrokerServerOptions): Promise<FastifyInstance> => {
  const { config, runtime, logger } = options
  const services = await runtime.runPromise(
    Effect.all({
      broker: TokenBroker.TokenBroker,
      verifier: TokenVerifier.TokenVerifier,
      store: GrantStore.GrantStore,
      servers: AuthorizationServer.AuthorizationServers
    })
  )
  const { broker, verifier, store, servers } = services
  const callerAuth: CallerAuth = makeCallerAuth(config.callers, {
    maxFailures: config.server.callerAuthentication.maxFailures,
    failureWindowMs: Duration.toMillis(config.server.callerAuthentication.failureWindow),
    maxConcurrent: config.server.callerAuthentication.maxConcurrent,
    maxQueued: config.server.callerAuthentication.maxQueued
  })
  const metrics = makeHttpMetrics()
  const debugEnabled = logger.isLevelEnabled("debug")
  const providersById = new Map(config.providers.map((p) => [p.id, p]))

  /** Runs a use case in the one runtime; a typed failure becomes its problem (or OAuth error). */
  const run = async <A>(
    effect: Effect.Effect<A, TokenBrokerError, BrokerServices>,
    style: "problem" | "oauth" = "problem"
  ) => {
    const exit = await runtime.runPromiseExit(effect)
    if (Exit.isSuccess(exit)) return exit.value
    const failure = Cause.failureOption(exit.cause)
    if (Option.isSome(failure) && isTokenBrokerError(failure.value)) {
      throw style === "oauth"
        ? new HttpOAuthError(oauthErrorOf(failure.value))
        : new HttpProblem(problemOf(failure.value))
    }
    throw new Error(`unexpected failure: ${Cause.pretty(exit.cause).split("\n")[0] ?? "defect"}`)
  }

  const { maxConnections, ...limits } = httpServerOptions(config.server.connections)
  const app = Fastify({
    ...limits,
    loggerInstance: logger,
    childLoggerFactory: (parent, bindings, options) =>
      lazyChildLogger(parent as unknown as Logger, bindings, options),
    bodyLimit: config.server.bodyLimit,
    // fastify accepts a hop count too; its types name only boolean, string and functions
    trustProxy: config.server.trustProxy as boolean | string,
    return503OnClosing: true,
    forceCloseConnections: "idle",
    requestIdHeader: false,
    genReqId: (req) => {
      const incoming = req.headers["x-request-id"]
      return typeof incoming === "string" && REQUEST_ID.test(incoming) ? incoming : randomUUID()
    },
    routerOptions: { maxParamLength: 1024 },
    frameworkErrors: (error, request, reply) => {
      const problem: Problem = {
        status: 400,
        code: "invalid_request",
        title: "Invalid request",
        detail:
          error.code === "FST_ERR_BAD_URL"
            ? "The URL is not well-formed (bad percent-encoding)"
            : "The request is not well-formed"
      }
      void sendProblem(request, reply, problem)
    }
  }) as unknown as FastifyInstance

  app.server.maxConnections = maxConnections
  app.decorateRequest("caller", null)

  app.addContentTypeParser(
    "application/x-www-form-urlencoded",
    { parseAs: "string" },
    (_request, body, done) => {
      done(null, new URLSearchParams(typeof body === "string" ? body : body.toString("utf8")))
    }
  )

  const sendProblem = (request: FastifyRequest, reply: FastifyReply, problem: Problem) => {
    request.log.debug(
      { status: problem.status, code: problem.code, detail: problem.detail },
      "request refused"
    )
    for (const [name, value] of Object.entries(problem.headers ?? {})) void reply.header(name, value)
    return reply
      .code(problem.status)
      .type("application/problem+json")
      .send(problemBody(problem, request.url.split("?")[0] ?? "/", request.id))
  }

  const sendOAuth = (reply: FastifyReply, error: OAuthError) => {
    reply.log.debug(
      { status: error.status, error: error.error, description: error.description },
      "token request refused"
    )
    for (const [name, value] of Object.entries(error.headers ?? {})) void reply.header(name, value)
    return reply
      .code(error.status)
      .header("cache-control", "no-store")
      .header("pragma", "no-cache")
      .type("application/json")
      .send({ error: error.error, error_description: error.description })
  }

  /** Fastify's own 4xx errors (parsing, content type, size) in our two formats. */
  const frameworkProblem = (error: {
    code?: string | undefined
    statusCode?: number | undefined
    message: string
  }): Problem => {
    const status = error.statusCode ?? 500
    switch (error.code) {
      case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
        return {
          status: 415,
          code: "unsupported_media_type",
          title: "Unsupported media type",
          detail: "Send application/json (or application/x-www-form-urlencoded at /oauth/token)"
        }
      case "FST_ERR_CTP_BODY_TOO_LARGE":
        return {
          status: 413,
          code: "payload_too_large",
          title: "Payload too large",
          detail: `The body is larger than ${config.server.bodyLimit} bytes`
        }
      case "FST_ERR_CTP_INVALID_JSON_BODY":
      case "FST_ERR_CTP_EMPTY_JSON_BODY":
        return {
          status: 400,
          code: "invalid_request",
          title: "Invalid request",
          detail: "The body is not valid JSON"
        }
      case "FST_ERR_CTP_INVALID_CONTENT_LENGTH":
        return {
          status: 400,
          code: "invalid_request",
          title: "Invalid request",
          detail: "Content-Length does not match the body"
        }
      default:
        return {
          status,
          code: status === 404 ? "not_found" : "invalid_request",
          title: status === 404 ? "Not found" : "Invalid request",
          detail: status >= 500 ? "Internal error" : error.message.slice(0, 200)
        }
    }
  }

  app.setErrorHandler((error: unknown, request, reply) => {
    const style = request.routeOptions.config?.errors ?? "problem"
    if (error instanceof HttpOAuthError) return sendOAuth(reply, error.oauth)
    if (error instanceof HttpProblem) {
      if (style === "oauth") {
        const { problem } = error
        return sendOAuth(reply, {
          status: problem.status,
          error:
            problem.status === 401
              ? "invalid_client"
              : problem.code === "forbidden"
                ? "unauthorized_client"
                : problem.status === 429
                  ? "slow_down"
                  : "invalid_request",
          description: problem.detail,
          headers: problem.headers
        })
      }
      return sendProblem(request, reply, error.problem)
    }
    const e = error as { code?: string; statusCode?: number; message?: string }
    const status = typeof e.statusCode === "number" ? e.statusCode : 500
    if (status >= 500) request.log.error({ err: { message: e.message, code: e.code } }, "request failed")
    const problem = frameworkProblem({ code: e.code, statusCode: status, message: String(e.message ?? "") })
    if (style === "oauth") {
      return sendOAuth(reply, {
        status: problem.status,
        error: problem.status >= 500 ? "server_error" : "invalid_request",
        description: problem.detail
      })
    }
    return sendProblem(request, reply, problem)
  })

  app.setNotFoundHandler((request, reply) =>
    sendProblem(request, reply, {
      status: 404,
      code: "not_found",
      title: "Not found",
      detail: `No route ${request.method} ${(request.url.split("?")[0] ?? "").slice(0, 200)}; see /docs`
    })
  )

  // Shutting down: answers in flight end their connection, so keep-alive clients do not hold the close up.
  let closing = false
  app.addHook("preClose", async () => {
    closing = true
  })

  // callback hooks, not async ones: each answer skips a promise and a microtask per hook
  app.addHook("onSend", (request, reply, payload, done) => {
    void reply.header("x-request-id", request.id)
    if (closing) void reply.header("connection", "close")
    done(null, payload)
  })

  app.addHook("onResponse", (request, reply, done) => {
    metrics.observe(
      request.method,
      request.routeOptions.url ?? "unmatched",
      reply.statusCode,
      reply.elapsedTime / 1000
    )
    done()
  })

  // Authentication of registered callers: Basic, or (at /oauth/token only) client_secret_post.
  app.addHook("preValidation", async (request) => {
    if (request.routeOptions.config?.auth !== "caller") return
    const oauth = request.routeOptions.config.errors === "oauth"
    const fail = (description: string) =>
      oauth
        ? oauthError(401, "invalid_client", description, {
            "www-authenticate": 'Basic realm="token-broker", charset="UTF-8"'
          })
        : unauthorized(description)
    const header = request.headers.authorization
    let credentials: { clientId: string; secret: string } | undefined
    if (header !== undefined) {
      credentials = parseBasic(header)
      if (credentials === undefined) throw fail("The Authorization header must be Basic client credentials")
    }
    if (oauth && request.body instanceof URLSearchParams && request.body.has("client_id")) {
      if (credentials !== undefined) {
        throw oauthError(
          400,
          "invalid_request",
          "Use one client authentication method, not Basic and client_secret_post together"
        )
      }
      const form = request.body
      if (form.getAll("client_id").length > 1 || form.getAll("client_secret").length > 1) {
        throw oauthError(400, "invalid_request", "client_id and client_secret must not be repeated")
      }
      credentials = { clientId: form.get("client_id") ?? "", secret: form.get("client_secret") ?? "" }
    }
    if (credentials === undefined)
      throw fail("Client authentication is required (HTTP Basic with the caller's id and secret)")
    if (
      credentials.clientId.length === 0 ||
      credentials.clientId.length > 256 ||
      credentials.secret.length > 1024
    ) {
      throw fail("Client authentication failed")
    }
    const outcome = await callerAuth.authenticate(credentials.clientId, credentials.secret, request.ip)
    if (outcome._tag === "Limited") {
      request.log.info({ reason: outcome.reason }, "client authentication limited")
      const detail =
        outcome.reason === "failures"
          ? `Too many failed authentications from this address; retry after ${outcome.retryAfterSeconds} s`
          : "Too many authentications at once; retry shortly"
      const headers = { "retry-after": String(outcome.retryAfterSeconds) }
      throw oauth
        ? oauthError(429, "slow_down", detail, headers)
        : httpProblem(429, "rate_limited", "Too many requests", detail, { headers })
    }
    if (outcome._tag === "Refused") {
      request.log.debug({ clientId: credentials.clientId.slice(0, 128) }, "client authentication failed")
      throw fail("Client authentication failed")
    }
    const caller = outcome.caller
    request.log.debug({ caller: caller.id }, "caller authenticated")
    request.caller = caller
  })

  await app.register(rateLimit, {
    global: true,
    hook: "preHandler",
    max: config.server.rateLimit.max,
    timeWindow: Duration.toMillis(config.server.rateLimit.timeWindow),
    keyGenerator: (request) => (request.caller === null ? `ip:${request.ip}` : `caller:${request.caller.id}`),
    errorResponseBuilder: (_request, context) =>
      httpProblem(
        429,
        "rate_limited",
        "Too many requests",
        `Rate limit of ${context.max} requests exceeded; retry after ${context.after}`,
        {
          headers: { "retry-after": String(Math.max(1, Math.ceil(context.ttl / 1000))) }
        }
      )
  })

  const callerOf = (request: FastifyRequest): CallerPolicy => {
    if (request.caller === null) throw unauthorized("Client authentication is required")
    return request.caller
  }

  const checkGrantAccess = (caller: CallerPolicy, subject: string, provider: string) => {
    if (!allowsProvider(caller, provider)) {
      throw forbidden(`Caller "${caller.id}" may not use provider "${provider}"`, {
        reason: "provider_not_allowed"
      })
    }
    if (!allowsSubject(caller, subject)) {
      throw forbidden(`Caller "${caller.id}" may not act for this subject`, { reason: "subject_not_allowed" })
    }
  }

  const needGrants = (caller: CallerPolicy, level: "read" | "manage") => {
    if (caller.grants === "manage" || (level === "read" && caller.grants === "read")) return
    throw forbidden(
      `Caller "${caller.id}" may not ${level === "read" ? "read" : "manage"} grants (grants: ${caller.grants})`,
      {
        reason: "grants_not_allowed"
      }
    )
  }

  const callerRoute = { auth: "caller" as const, errors: "problem" as const }

  // --- background tokens -------------------------------------------------------------------------
  app.post("/v1/grants/:subject/:provider/token", { config: callerRoute }, async (request, reply) => {
    const caller = callerOf(request)
    if (!caller.backgroundTokens) {
      throw forbidden(`Caller "${caller.id}" may not get background tokens`, {
        reason: "background_tokens_not_allowed"
      })
    }
    const { subject, provider } = parse(GrantPath, request.params, "path")
    checkGrantAccess(caller, subject, provider)
    const body = parse(BackgroundTokenBody, request.body ?? {}, "body")
    const scopes = body.scopes ?? (allowsAnyScope(caller) ? undefined : caller.scopes)
    const denied = scopes === undefined ? undefined : deniedScope(caller, scopes)
    if (denied !== undefined) {
      throw forbidden(`Caller "${caller.id}" may not ask for scope "${denied}"`, {
        reason: "scope_not_allowed"
      })
    }
    const tokenRequest: TokenBroker.BackgroundTokenRequest = {
      tenant: caller.tenant,
      subject,
      provider,
      scopes,
      minTtl: body.minTtl === undefined ? undefined : body.minTtl * 1000
    }
    // the hot path: a cache hit settles without entering the runtime
    const token = broker.cachedToken(tokenRequest) ?? (await run(broker.backgroundToken(tokenRequest)))
    if (debugEnabled) {
      request.log.debug(
        {
          caller: caller.id,
          provider,
          source: token.source,
          scopes: token.scopes,
          expiresAt: token.expiresAt
        },
        "background token issued"
      )
    }
    void reply.header("cache-control", "no-store")
    return tokenView(token, Date.now())
  })

  // The upstream API refused a token this broker issued: drop it, so the next token call refreshes;
  // repeated refusals after refreshes mark the grant for consent (core's reportRejected).
  app.post(
    "/v1/grants/:subject/:provider/token/rejected",
    { config: callerRoute },
    async (request, reply) => {
      const caller = callerOf(request)
      if (!caller.backgroundTokens) {
        throw forbidden(`Caller "${caller.id}" may not get background tokens`, {
          reason: "background_tokens_not_allowed"
        })
      }
      const { subject, provider } = parse(GrantPath, request.params, "path")
      checkGrantAccess(caller, subject, provider)
      const body = parse(RejectedTokenBody, request.body ?? {}, "body")
      const grant = await run(
        broker.reportRejected({
          tenant: caller.tenant,
          subject,
          provider,
          accessToken: Redacted.make(body.accessToken)
        })
      )
      if (Option.isNone(grant)) return reply.code(204).send()
      return grantView(grant.value)
    }
  )

  // --- grants ----------------------------------------------------------------------------------------
  app.get("/v1/grants", { config: callerRoute }, async (request) => {
    const caller = callerOf(request)
    needGrants(caller, "read")
    const query = parse(ListGrantsQuery, request.query, "query")
    if (
      !allowsAllProviders(caller) &&
      (query.provider === undefined || !allowsProvider(caller, query.provider))
    ) {
      throw forbidden(
        `Caller "${caller.id}" may list only its own providers: filter by one of them (?provider=)`,
        {
          reason: "provider_not_allowed"
        }
      )
    }
    if (
      !allowsAllSubjects(caller) &&
      (query.subject === undefined || !allowsSubject(caller, query.subject))
    ) {
      throw forbidden(
        `Caller "${caller.id}" may list only its own subjects: filter by one of them (?subject=)`,
        {
          reason: "subject_not_allowed"
        }
      )
    }
    const list = await run(
      broker.listGrants({
        filter: {
          tenant: caller.tenant,
          subject: query.subject,
          provider: query.provider,
          status: query.status as GrantStatus | undefined
        },
        cursor: query.cursor,
        limit: query.limit ?? 50
      })
    )
    return { items: list.items.map(grantView), nextCursor: list.nextCursor }
  })

  app.get("/v1/grants/:subject/:provider", { config: callerRoute }, async (request) => {
    const caller = callerOf(request)
    needGrants(caller, "read")
    const { subject, provider } = parse(GrantPath, request.params, "path")
    checkGrantAccess(caller, subject, provider)
    const found = await run(broker.grantStatus({ tenant: caller.tenant, subject, provider }))
    if (Option.isNone(found)) {
      throw httpProblem(
        404,
        "grant_not_found",
        "Grant not found",
        `No grant of this subject for provider "${provider}"`,
        {
          extensions: {
            authorize: {
              method: "POST",
              href: `/v1/grants/${encodeURIComponent(subject)}/${encodeURIComponent(provider)}/authorize`
            }
          }
        }
      )
    }
    return grantView(found.value)
  })

  app.delete("/v1/grants/:subject/:provider", { config: callerRoute }, async (request) => {
    const caller = callerOf(request)
    needGrants(caller, "manage")
    const { subject, provider } = parse(GrantPath, request.params, "path")
    checkGrantAccess(caller, subject, provider)
    const result = await run(broker.revoke({ tenant: caller.tenant, subject, provider }))
    return {
      removed: result.removed,
      upstream: result.upstream,
      ...(result.upstreamError === undefined ? {} : { upstreamError: result.upstreamError }),
      accessTokens: result.accessTokens,
      revokedAtProvider: result.revokedAtProvider
    }
  })

  app.post("/v1/grants/:subject/:provider/authorize", { config: callerRoute }, async (request) => {
    const caller = callerOf(request)
    needGrants(caller, "manage")
    const { subject, provider } = parse(GrantPath, request.params, "path")
    checkGrantAccess(caller, subject, provider)
    const body = parse(AuthorizeBody, request.body ?? {}, "body")
    // No scopes named: the caller's own (never the provider's defaults beyond the caller's policy).
    const scopes = body.scopes ?? (allowsAnyScope(caller) ? undefined : caller.scopes)
    const denied = scopes === undefined ? undefined : deniedScope(caller, scopes)
    if (denied !== undefined) {
      throw forbidden(`Caller "${caller.id}" may not ask for scope "${denied}"`, {
        reason: "scope_not_allowed"
      })
    }
    if (
      body.returnTo !== undefined &&
      !config.server.returnToOrigins.includes(new URL(body.returnTo).origin)
    ) {
      throw invalidRequest("returnTo", "returnTo: its origin is not in server.returnToOrigins")
    }
    const started = await run(
      broker.startAuthorization({
        tenant: caller.tenant,
        subject,
        provider,
        scopes,
        returnTo: body.returnTo
      })
    )
    request.log.debug({ caller: caller.id, provider, expiresAt: started.expiresAt }, "consent started")
    return {
      authorizationUrl: started.authorizationUrl.href,
      expiresAt: new Date(started.expiresAt).toISOString()
    }
  })

  // --- the consent callback (the user's browser) -------------------------------------------------------
  app.get("/connect/callback", async (request, reply) => {
    const params = new URL(request.url, "http://callback.invalid").searchParams
    void reply.headers(RESULT_PAGE_HEADERS)
    if (!params.has("state")) {
      return reply.code(400).send(
        resultPage({
          ok: false,
          title: "Nothing to finish here",
          detail:
            "This address finishes a consent that the broker started; open the authorization link you were given instead."
        })
      )
    }
    const exit = await runtime.runPromiseExit(broker.completeAuthorization(params))
    if (Exit.isSuccess(exit)) {
      const { grant, returnTo } = exit.value
      request.log.debug(
        { subject: grant.subject, provider: grant.provider, version: grant.version },
        "consent completed"
      )
      return resultPage({
        ok: true,
        title: `Connected to ${grant.provider}`,
        detail: `The broker may now act for ${grant.subject} at ${grant.provider} (scopes: ${grant.scopes.join(" ") || "none"}). You can close this window.`,
        returnTo
      })
    }
    const failure = Cause.failureOption(exit.cause)
    if (Option.isSome(failure)) {
      const problem = problemOf(failure.value)
      request.log.debug({ code: problem.code }, "consent not completed")
      return reply.code(problem.status).send(resultPage({ ok: false, ...consentFailure(failure.value) }))
    }
    request.log.error({ err: { message: "completeAuthorization failed with a defect" } }, "request failed")
    return reply.code(500).send(
      resultPage({
        ok: false,
        title: "Something went wrong",
        detail: "The consent could not be finished; try again."
      })
    )
  })

  // --- RFC 8693 security token service -------------------------------------------------------------
  app.post("/oauth/token", { config: { auth: "caller", errors: "oauth" } }, async (request, reply) => {
    const caller = callerOf(request)
    if (!(request.body instanceof URLSearchParams)) {
      throw oauthError(400, "invalid_request", "The body must be application/x-www-form-urlencoded")
    }
    const form = request.body
    for (const name of new Set(form.keys())) {
      if (form.getAll(name).length > 1)
        throw oauthError(400, "invalid_request", `The parameter ${name.slice(0, 64)} is repeated`)
    }
    const grantType = form.get("grant_type")
    if (grantType === null) throw oauthError(400, "invalid_request", "grant_type is required")
    if (grantType !== TOKEN_EXCHANGE) {
      throw oauthError(400, "unsupported_grant_type", `Only ${TOKEN_EXCHANGE} is supported here`)
    }
    if (!caller.tokenExchange) {
      throw oauthError(403, "unauthorized_client", `Client "${caller.id}" may not use token exchange`)
    }
    const fields = Object.fromEntries(
      [...form].filter(([name]) => name !== "client_id" && name !== "client_secret")
    )
    const parsed = TokenExchangeForm.safeParse(fields)
    if (!parsed.success) {
      const issue = parsed.error.issues[0]
      const name = issue?.path.map(String).join(".") ?? "request"
      const hint =
        name === "subject_token_type" || name === "requested_token_type"
          ? `${name} must be ${ACCESS_TOKEN_TYPE}`
          : name === "subject_token"
            ? "subject_token is required (the user's access token)"
            : `${name}: ${issue?.message ?? "invalid"}`
      throw oauthError(400, "invalid_request", hint)
    }
    const input = parsed.data
    const targets = [input.audience, input.resource].filter((t): t is string => t !== undefined)
    if (targets.length === 0) {
      throw oauthError(
        400,
        "invalid_target",
        "Name the upstream with audience (a provider id or its resource) or resource"
      )
    }
    const provider = config.providers.find((p: ProviderConfig) =>
      targets.every((target) => target === p.id || (p.resource !== undefined && target === p.resource))
    )
    if (provider === undefined)
      throw oauthError(400, "invalid_target", "No configured upstream matches the audience/resource")
    if (!allowsProvider(caller, provider.id)) {
      throw oauthError(
        403,
        "invalid_target",
        `Client "${caller.id}" may not obtain tokens for "${provider.id}"`
      )
    }
    const asked = input.scope?.split(" ").filter((s) => s.length > 0)
    if (asked !== undefined && asked.length === 0) {
      throw oauthError(
        400,
        "invalid_scope",
        "scope is empty: name at least one scope, or leave scope out for the client's allowed scopes"
      )
    }
    const scopes = asked ?? (allowsAnyScope(caller) ? undefined : [...caller.scopes])
    const denied = scopes === undefined ? undefined : deniedScope(caller, scopes)
    if (denied !== undefined)
      throw oauthError(403, "invalid_scope", `Client "${caller.id}" may not ask for scope "${denied}"`)
    const subjectToken = Redacted.make(input.subject_token)
    const verified = await run(
      verifier.verify(subjectToken, { audience: config.sessionTokens?.audience ?? [] }),
      "oauth"
    )
    if (!allowsSubjectToken(caller, verified)) {
      throw oauthError(
        403,
        "unauthorized_client",
        `Client "${caller.id}" may not exchange tokens issued to this client or audience (see subjectTokens in its policy)`
      )
    }
    if (!allowsSubject(caller, verified.subject)) {
      throw oauthError(
        403,
        "unauthorized_client",
        `Client "${caller.id}" may not act for the subject of this token`
      )
    }
    const token = await run(broker.sessionToken({ subjectToken, provider: provider.id, scopes }), "oauth")
    request.log.debug(
      {
        caller: caller.id,
        provider: provider.id,
        subject: verified.subject,
        scopes: token.scopes,
        expiresAt: token.expiresAt
      },
      "token exchanged"
    )
    void reply.header("cache-control", "no-store").header("pragma", "no-cache")
    return {
      access_token: Redacted.value(token.accessToken),
      issued_token_type: ACCESS_TOKEN_TYPE,
      token_type: "Bearer",
      expires_in: Math.max(0, Math.floor((token.expiresAt - Date.now()) / 1000)),
      ...(token.scopes.length > 0 ? { scope: token.scopes.join(" ") } : {})
    }
  })

  // --- operations --------------------------------------------------------------------------------------
  const open = { rateLimit: false as const }
  app.get("/healthz", { config: open }, async () => ({ status: "ok" }))

  app.get("/readyz", { config: open }, async (_request, reply) => {
    const check = <A, E>(effect: Effect.Effect<A, E>) =>
      runtime
        .runPromiseExit(
          Effect.timeoutFail(effect, { duration: "5 seconds", onTimeout: () => "timeout" as const })
        )
        .then((exit) =>
          Exit.isSuccess(exit)
            ? "ok"
            : Option.match(Cause.failureOption(exit.cause), {
                onNone: () => "failed",
                onSome: (e) => (e === "timeout" ? "timeout" : ((e as { code?: string }).code ?? "failed"))
              })
        )
    const storage = check(store.get({ tenant: "__readyz__", subject: "__readyz__", provider: "__readyz__" }))
    const providers = Promise.all(
      config.providers.map(async (provider) => {
        const status = await check(
          Effect.flatMap(servers.get(provider.id), (client) =>
            client.authorizationUrl({
              state: "readyz",
              nonce: "readyz",
              codeChallenge: "readyz",
              scopes: ["openid"],
              redirectUri: provider.redirectUri
            })
          )
        )
        return [provider.id, status] as const
      })
    )
    const checks = { storage: await storage, providers: Object.fromEntries(await providers) }
    const ready = checks.storage === "ok" && Object.values(checks.providers).every((s) => s === "ok")
    return reply.code(ready ? 200 : 503).send({ status: ready ? "ready" : "not_ready", checks })
  })

  // An optional bearer token: compared as SHA-256 digests in constant time (no length leak).
  const metricsToken = config.server.metrics.token
  const metricsDigest =
    metricsToken === undefined
      ? undefined
      : createHash("sha256").update(Redacted.value(metricsToken)).digest()
  app.get("/metrics", { config: open }, async (request, reply) => {
    if (metricsDigest !== undefined) {
      const presented = /^Bearer ([\x21-\x7E]+)$/.exec(request.headers.authorization ?? "")?.[1]
      const digest = createHash("sha256")
        .update(presented ?? "")
        .digest()
      if (presented === undefined || !timingSafeEqual(digest, metricsDigest)) {
        return sendProblem(request, reply, {
          status: 401,
          code: "unauthorized",
          title: "Unauthorized",
          detail: "/metrics needs Authorization: Bearer <server.metrics.token>",
          headers: { "www-authenticate": 'Bearer realm="token-broker metrics"' }
        })
      }
    }
    const snapshot = await runtime.runPromise(Metric.snapshot)
    return reply.type("text/plain; version=0.0.4; charset=utf-8").send(await metrics.render(snapshot))
  })

  const document = openApiDocument(config.server.publicUrl)
  app.get("/openapi.json", async () => document)
  const docs = docsPage(document)
  app.get("/docs", async (_request, reply) =>
    reply
      .header("content-security-policy", "default-src 'none'; style-src 'unsafe-inline'")
      .type("text/html; charset=utf-8")
      .send(docs)
  )

  app.addHook("onReady", async () => {
    logger.info(
      { providers: [...providersById.keys()], callers: config.callers.length, storage: config.storage.kind },
      "broker ready"
    )
  })

  return app
}
