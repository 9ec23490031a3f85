// `POST /oauth/token`: RFC 8693 token exchange of a user's own token for a session token (never stored),
// with the caller's subject-token policy and the RFC 6749 error of each refusal.
import type { CallerPolicy } from "@token-broker/config"
import {
  firstZodProblem,
  type ProviderConfig,
  Scopes,
  type TokenBroker,
  type TokenBrokerError,
  type TokenVerifier
} from "@token-broker/core"
import { Effect, Redacted } from "effect"
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod"
import type { Logger } from "pino"
import type { BrokerContext } from "../BrokerContext.js"
import { callerOf } from "../CallerAuthentication.js"
import { allowsAnyScope, allowsProvider, allowsSubject, allowsSubjectToken, deniedScope } from "../Callers.js"
import { HttpOAuthError } from "../Problems.js"
import {
  ACCESS_TOKEN_TYPE,
  OAuthErrorResponse,
  plainTokenExchangeForm,
  TOKEN_EXCHANGE,
  TokenExchangeForm,
  TokenExchangeFormDoc,
  type TokenExchangeInput,
  TokenExchangeResponse
} from "../Schemas.js"
import { exchangeAnswer } from "../Views.js"
import { plainJson } from "./answers.js"

const oauthError = (status: number, error: string, description: string) =>
  new HttpOAuthError({ status, error, description })

/**
 * The form's schema documents the body but does not validate it before the handler: RFC 6749 and 8693
 * name a different error for each step (a repeated parameter, a missing or other grant_type, a client
 * not allowed token exchange, then the parameters), and the client's permission sits between them, so
 * the handler checks the form in that order itself.
 */
const formCheckedByHandler = () => () => true

/**
 * The form's parameters (client authentication left out) through TokenExchangeForm, or the RFC 6749
 * refusal naming the first problem.
 */
const parsedForm = (fields: ReadonlyMap<string, string>): TokenExchangeInput => {
  // own properties, whatever the names (`__proto__` included)
  const parameters = Object.fromEntries(
    [...fields].filter(([name]) => name !== "client_id" && name !== "client_secret")
  )
  const parsed = TokenExchangeForm.safeParse(parameters)
  if (parsed.success) return parsed.data
  const problem = firstZodProblem(parsed.error, { root: "request" })
  const name = problem?.field ?? "request"
  const hint =
    name === "subject_token_type" || name === "requested_token_type"
      ? `${name} must be ${ACCESS_TOKEN_TYPE}`
      : name === "subject_token"
        ? "subject_token is required (the user's access token)"
        : `${name}: ${problem?.description ?? "invalid"}`
  throw oauthError(400, "invalid_request", hint)
}

/** Whether the caller's policy lets it exchange this subject token: the refusal when not. */
const subjectTokenRefusal = (caller: CallerPolicy, verified: TokenVerifier.VerifiedToken) => {
  if (!allowsSubjectToken(caller, verified)) {
    return oauthError(
      403,
      "unauthorized_client",
      `Client "${caller.id}" may not exchange tokens issued to this client or audience (see subjectTokens in its policy)`
    )
  }
  if (!allowsSubject(caller, verified.subject)) {
    return oauthError(
      403,
      "unauthorized_client",
      `Client "${caller.id}" may not act for the subject of this token`
    )
  }
  return undefined
}

/** The RFC 8693 security token service: the user's own token for an upstream access token. */
export const tokenExchangeRoutes: FastifyPluginAsyncZod<BrokerContext> = async (app, context) => {
  const { config, broker, verifier, run } = context
  const subjectAudience = config.sessionTokens?.audience ?? []
  // fastify types its logger as pino's base; the instance is the pino logger the server was given
  const debugEnabled = (app.log as unknown as Logger).isLevelEnabled("debug")

  app.post(
    "/oauth/token",
    {
      config: { auth: "caller", errors: "oauth" },
      validatorCompiler: formCheckedByHandler,
      serializerCompiler: plainJson,
      schema: {
        summary: "RFC 8693 token exchange",
        description:
          "Exchanges the user's own token (subject_token) for an upstream access token. Name the upstream by audience (provider id or resource) or resource. Client authentication: client_secret_basic or client_secret_post. Policy denials answer 403 with unauthorized_client, invalid_target or invalid_scope.",
        consumes: ["application/x-www-form-urlencoded"],
        body: TokenExchangeFormDoc,
        response: {
          200: TokenExchangeResponse.describe("RFC 8693 token response"),
          400: OAuthErrorResponse.describe(
            "invalid_request, invalid_target, invalid_scope, unsupported_grant_type"
          ),
          401: OAuthErrorResponse.describe("invalid_client (with WWW-Authenticate)"),
          403: OAuthErrorResponse.describe(
            "unauthorized_client, invalid_target, invalid_scope: the caller's policy"
          ),
          503: OAuthErrorResponse.describe("temporarily_unavailable (Retry-After)")
        }
      }
    },
    async (request, reply) => {
      const caller = callerOf(request)
      const form: unknown = request.body
      if (!(form instanceof URLSearchParams)) {
        throw oauthError(400, "invalid_request", "The body must be application/x-www-form-urlencoded")
      }
      // one pass over the form: its fields, and whether a parameter is repeated (then the first such one
      // in the form's order is named)
      const fields = new Map<string, string>()
      let repeated = false
      for (const [name, value] of form) {
        if (fields.has(name)) repeated = true
        else fields.set(name, value)
      }
      if (repeated) {
        const name = [...new Set(form.keys())].find((key) => form.getAll(key).length > 1) ?? ""
        throw oauthError(400, "invalid_request", `The parameter ${name.slice(0, 64)} is repeated`)
      }
      const grantType = fields.get("grant_type") ?? null
      if (grantType === null) throw oauthError(400, "invalid_request", "grant_type is required")
      if (grantType !== TOKEN_EXCHANGE) {
        throw oauthError(400, "unsupported_grant_type", `Only ${TOKEN_EXCHANGE} is supported here`)
      }
      if (!caller.tokenExchange) {
        throw oauthError(403, "unauthorized_client", `Client "${caller.id}" may not use token exchange`)
      }
      const input = plainTokenExchangeForm(fields) ?? parsedForm(fields)
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
      const asked = input.scope === undefined ? undefined : Scopes.split(input.scope)
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
      const asking = { subjectToken, provider: provider.id, scopes }
      // a repeat exchange, synchronously: the verification remembered, the caller's policy on it, the
      // session token cached; anything else (a refusal included) runs the effect below, which names it
      const remembered = verifier.remembered?.(subjectToken, { audience: subjectAudience })
      const cached =
        remembered === undefined || subjectTokenRefusal(caller, remembered) !== undefined
          ? undefined
          : broker.cachedSessionToken(asking)
      // one run otherwise: the verification (remembered after the first request), the caller's policy on
      // the subject token, then the session token (cached after the first request)
      const { verified, token } =
        remembered !== undefined && cached !== undefined
          ? { verified: remembered, token: cached }
          : await run(
              Effect.flatMap(verifier.verify(subjectToken, { audience: subjectAudience }), (verified) => {
                const refusal = subjectTokenRefusal(caller, verified)
                const exchanged: Effect.Effect<TokenBroker.IssuedToken, TokenBrokerError | HttpOAuthError> =
                  refusal === undefined ? broker.sessionToken(asking) : Effect.fail(refusal)
                return Effect.map(exchanged, (token) => ({ verified, token }))
              }),
              "oauth"
            )
      if (debugEnabled) {
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
      }
      // already serialized (exchangeAnswer): fastify sends a string as it is
      return reply
        .header("cache-control", "no-store")
        .header("pragma", "no-cache")
        .type("application/json; charset=utf-8")
        .send(exchangeAnswer(token, Date.now()) as never)
    }
  )
}
