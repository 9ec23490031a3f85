import type { CallerPolicy } from "@token-broker/config"
import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from "fastify"
import type { Logger } from "pino"
import { type CallerAuth, parseBasic } from "./Callers.js"
import { HttpOAuthError, httpProblem, unauthorized } from "./Problems.js"
import type { RateLimit } from "./RateLimit.js"

/**
 * Authentication of registered callers at the routes that ask for it (`config.auth: "caller"`): HTTP Basic
 * everywhere, or client_secret_post at /oauth/token. It runs in the one `preValidation` hook, so the
 * rate limiter (keyed by the caller) and the route's schemas come after it: an unauthenticated request
 * learns nothing about its input.
 */
declare module "fastify" {
  interface FastifyRequest {
    caller: CallerPolicy | null
  }
  interface FastifyContextConfig {
    /** "caller": a registered caller must authenticate. */
    auth?: "caller" | "none"
  }
}

const BASIC_CHALLENGE = { "www-authenticate": 'Basic realm="token-broker", charset="UTF-8"' }

const oauthError = (status: number, error: string, description: string, headers?: Record<string, string>) =>
  new HttpOAuthError({ status, error, description, headers })

const refusal = (oauth: boolean, description: string) =>
  oauth ? oauthError(401, "invalid_client", description, BASIC_CHALLENGE) : unauthorized(description)

/** Whether a token-endpoint request carries client_secret_post credentials in its form. */
const postsCredentials = (request: FastifyRequest, oauth: boolean) =>
  oauth && request.body instanceof URLSearchParams && request.body.has("client_id")

/** The full authentication of a request: its credentials decoded, checked and verified. */
const authenticateRequest = async (request: FastifyRequest, callerAuth: CallerAuth, oauth: boolean) => {
  const header = request.headers.authorization
  let credentials: { clientId: string; secret: string } | undefined
  if (header !== undefined) {
    credentials = parseBasic(header)
    if (credentials === undefined)
      throw refusal(oauth, "The Authorization header must be Basic client credentials")
  }
  if (postsCredentials(request, oauth)) {
    if (credentials !== undefined) {
      throw oauthError(
        400,
        "invalid_request",
        "Use one client authentication method, not Basic and client_secret_post together"
      )
    }
    const form = request.body as URLSearchParams
    if (form.getAll("client_id").length > 1 || form.getAll("client_secret").length > 1) {
      throw oauthError(400, "invalid_request", "client_id and client_secret must not be repeated")
    }
    credentials = { clientId: form.get("client_id") ?? "", secret: form.get("client_secret") ?? "" }
  }
  if (credentials === undefined)
    throw refusal(oauth, "Client authentication is required (HTTP Basic with the caller's id and secret)")
  if (
    credentials.clientId.length === 0 ||
    credentials.clientId.length > 256 ||
    credentials.secret.length > 1024
  ) {
    throw refusal(oauth, "Client authentication failed")
  }
  // credentials from the form are not remembered by header: the header is then absent
  const outcome = await callerAuth.authenticate(credentials.clientId, credentials.secret, request.ip, header)
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
    throw refusal(oauth, "Client authentication failed")
  }
  request.log.debug({ caller: outcome.caller.id }, "caller authenticated")
  request.caller = outcome.caller
}

/**
 * The server's one `preValidation` hook: caller authentication where the route asks for it, then the
 * rate limit (keyed by the caller it found) on matched routes that do not opt out. One callback hook,
 * not an async one and not one per concern: a Basic header that authenticated before
 * (`rememberedBasic`) settles at once, with no promise, no decoding and no scrypt, and fastify runs
 * one hook where it ran two, an application-level one and a route-level one (each is fastify's hook
 * runner and a `next` closure per request). Anything else is authenticated in full first.
 */
export const installCallerAuthentication = (
  app: FastifyInstance,
  callerAuth: CallerAuth,
  rateLimit: RateLimit
) => {
  app.decorateRequest("caller", null)
  // fastify types its logger as pino's base; the instance is the pino logger the server was given. Below
  // debug, a remembered caller does not touch `request.log` (its lazy child) at all.
  const debugEnabled = (app.log as unknown as Logger).isLevelEnabled("debug")
  const limited = (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => {
    if (request.routeOptions.config?.rateLimit === false || request.is404) return done()
    const refused = rateLimit(request, reply)
    return refused === undefined ? done() : done(refused)
  }
  app.addHook("preValidation", (request, reply, done) => {
    const config = request.routeOptions.config
    if (config?.auth !== "caller") return limited(request, reply, done)
    const oauth = config.errors === "oauth"
    const header = request.headers.authorization
    const remembered = header === undefined ? undefined : callerAuth.rememberedBasic(header)
    if (remembered !== undefined && !postsCredentials(request, oauth)) {
      if (debugEnabled) request.log.debug({ caller: remembered.id }, "caller authenticated")
      request.caller = remembered
      return limited(request, reply, done)
    }
    authenticateRequest(request, callerAuth, oauth).then(() => limited(request, reply, done), done)
  })
}

/** The authenticated caller of a route that asked for one. */
export const callerOf = (request: FastifyRequest): CallerPolicy => {
  if (request.caller === null) throw unauthorized("Client authentication is required")
  return request.caller
}
