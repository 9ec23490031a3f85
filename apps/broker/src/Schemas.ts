import { Scopes as ScopeRules, TokenBroker } from "@token-broker/core"
import { z } from "zod"

/** Every request body, query and path parameter of the HTTP API, validated with zod. */

export const Scope = z
  .string()
  .max(256, { message: "a scope is at most 256 characters" })
  .regex(ScopeRules.SCOPE_TOKEN, { message: ScopeRules.SCOPE_TOKEN_MESSAGE })

/** A list of scopes names at least one: leave it out for the caller's allowed scopes, never send []. */
export const Scopes = z
  .array(Scope)
  .min(1, { message: "name at least one scope, or leave scopes out for the caller's allowed scopes" })
  .max(50, { message: "ask for at most 50 scopes" })

// C0 controls and DEL, by UTF-16 unit: no other code point has a unit in that range
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding them is this pattern's purpose
const CONTROL = /[\u0000-\u001f\u007f]/
const PROVIDER_ID = /^[A-Za-z0-9._-]{1,64}$/

export const Subject = z
  .string()
  .min(1, { message: "the subject must not be empty" })
  .max(256, { message: "the subject is at most 256 characters" })
  .refine((s) => !CONTROL.test(s), { message: "the subject must not contain control characters" })

export const ProviderId = z
  .string()
  .regex(PROVIDER_ID, { message: "a provider id is 1-64 characters of A-Z a-z 0-9 . _ -" })

/**
 * A JSON body a request may leave out: no body (fastify hands the schema `null`) or `null` reads as `{}`,
 * so a missing required field is named as in any other body.
 */
export const bodyOrEmpty = <S extends z.ZodType>(schema: S) => z.preprocess((value) => value ?? {}, schema)

/** A body the request may leave out (read as `{}`), documented as not required. */
export const optionalBody = <S extends z.ZodType>(schema: S) => {
  const body = bodyOrEmpty(schema)
  optionalBodies.add(body)
  return body
}

/** The bodies of `optionalBody`: the API document marks them not required. */
export const optionalBodies = new WeakSet<z.ZodType>()

export const GrantPath = z.strictObject({ subject: Subject, provider: ProviderId })

/**
 * Whether `params` is a path GrantPath accepts unchanged (the same checks as its schema, without zod):
 * a hot route takes such a path as it is and hands any other to zod, which names the problem.
 */
export const isPlainGrantPath = (params: unknown): boolean => {
  if (typeof params !== "object" || params === null) return false
  let keys = 0
  for (const _ in params) keys++
  const { subject, provider } = params as Record<string, unknown>
  return (
    keys === 2 &&
    typeof subject === "string" &&
    subject.length >= 1 &&
    // UTF-16 units: at most as many code points, which zod's max counts (a longer subject goes to zod)
    subject.length <= 256 &&
    !CONTROL.test(subject) &&
    typeof provider === "string" &&
    PROVIDER_ID.test(provider)
  )
}

export const BackgroundTokenBody = z
  .strictObject({
    scopes: Scopes.optional(),
    minTtl: z
      .number({ message: "minTtl is a number of seconds" })
      .int({ message: "minTtl is a whole number of seconds" })
      .min(0)
      .max(86_400, { message: "minTtl is at most 86400 seconds" })
      .optional()
      .describe("Seconds the token must still be valid for")
  })
  .describe("Optional: the request may have no body")

export const RejectedTokenBody = z
  .strictObject({
    accessToken: z
      .string()
      .min(1)
      .max(16_384, { message: "accessToken is at most 16384 characters" })
      .describe("The access token the upstream API refused (HTTP 401)")
  })
  .describe("Report a token that this broker issued and the upstream API refused")

export const AuthorizeBody = z.strictObject({
  scopes: Scopes.optional(),
  returnTo: z
    .url({ message: "returnTo must be an absolute URL" })
    .max(2048)
    .optional()
    .describe("Where the result page links back to; its origin must be in server.returnToOrigins")
})

export const ListGrantsQuery = z.strictObject({
  subject: Subject.optional(),
  provider: ProviderId.optional(),
  status: z
    .enum(["active", "reconsent_required"], { message: "status is active or reconsent_required" })
    .optional(),
  limit: z
    .string()
    .regex(/^\d{1,4}$/, { message: "limit is a whole number from 1 to 1000" })
    .transform(Number)
    .refine((n) => n >= 1 && n <= 1000, { message: "limit is a whole number from 1 to 1000" })
    .optional(),
  cursor: z.string().min(1).max(2048).optional()
})

export const TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
export const ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"

/** RFC 8693 request parameters (after client authentication parameters are taken out). */
export const TokenExchangeForm = z.object({
  grant_type: z.literal(TOKEN_EXCHANGE),
  subject_token: z.string().min(1).max(16_384),
  subject_token_type: z.literal(ACCESS_TOKEN_TYPE),
  requested_token_type: z.literal(ACCESS_TOKEN_TYPE).optional(),
  audience: z.string().min(1).max(2048).optional(),
  resource: z.string().min(1).max(2048).optional(),
  scope: z.string().max(4096).optional()
})

export type TokenExchangeInput = z.infer<typeof TokenExchangeForm>

const optionalWithin = (value: string | undefined, min: number, max: number) =>
  value === undefined || (value.length >= min && value.length <= max)

/**
 * The token-exchange form's parameters (by name, each given once) as TokenExchangeForm reads them, when
 * its checks plainly pass - the same checks, without zod (lengths in UTF-16 units: at most as many code
 * points, which zod's bounds count, so a longer value goes to zod); undefined otherwise, and zod names
 * the problem. zod's parse of a cached exchange's form was 1 us of its ~65 us (perf profile of
 * bench/http.ts). Parameters the schema does not name are left out, as zod strips them.
 */
export const plainTokenExchangeForm = (
  fields: ReadonlyMap<string, string>
): TokenExchangeInput | undefined => {
  const grantType = fields.get("grant_type")
  const subjectToken = fields.get("subject_token")
  const requestedTokenType = fields.get("requested_token_type")
  const audience = fields.get("audience")
  const resource = fields.get("resource")
  const scope = fields.get("scope")
  if (
    grantType !== TOKEN_EXCHANGE ||
    subjectToken === undefined ||
    !optionalWithin(subjectToken, 1, 16_384) ||
    fields.get("subject_token_type") !== ACCESS_TOKEN_TYPE ||
    (requestedTokenType !== undefined && requestedTokenType !== ACCESS_TOKEN_TYPE) ||
    !optionalWithin(audience, 1, 2048) ||
    !optionalWithin(resource, 1, 2048) ||
    !optionalWithin(scope, 0, 4096)
  ) {
    return undefined
  }
  return {
    grant_type: TOKEN_EXCHANGE,
    subject_token: subjectToken,
    subject_token_type: ACCESS_TOKEN_TYPE,
    ...(requestedTokenType === undefined ? {} : { requested_token_type: ACCESS_TOKEN_TYPE }),
    ...(audience === undefined ? {} : { audience }),
    ...(resource === undefined ? {} : { resource }),
    ...(scope === undefined ? {} : { scope })
  }
}

/** The same, as an OpenAPI request body. */
export const TokenExchangeFormDoc = TokenExchangeForm.extend({
  client_id: z.string().optional().describe("client_secret_post"),
  client_secret: z.string().optional().describe("client_secret_post")
})

export const IssuedTokenResponse = z.object({
  accessToken: z.string(),
  tokenType: z.literal("Bearer"),
  expiresIn: z.number().int(),
  expiresAt: z.string().describe("ISO 8601"),
  scopes: z.array(z.string()),
  source: z.enum(["cache", "store", "refresh", "exchange"])
})

export const GrantView = z.object({
  tenant: z.string(),
  subject: z.string(),
  provider: z.string(),
  version: z.number().int(),
  status: z.enum(["active", "reconsent_required"]),
  scopes: z.array(z.string()),
  identity: z.object({ issuer: z.string(), subject: z.string() }).nullable(),
  refreshTokenExpiresAt: z.string().nullable(),
  accessTokenExpiresAt: z.string().nullable(),
  createdAt: z.string(),
  updatedAt: z.string(),
  lastRefreshedAt: z.string().nullable(),
  failureCount: z.number().int(),
  lastErrorCode: z.string().nullable()
})

export const GrantListResponse = z.object({ items: z.array(GrantView), nextCursor: z.string().nullable() })

export const RevokeResponse = z.object({
  removed: z.boolean(),
  upstream: z.enum(TokenBroker.upstreamRevocationOutcomes),
  upstreamError: z.object({ code: z.string(), message: z.string() }).optional(),
  accessTokens: z
    .enum(TokenBroker.accessTokenRevocationOutcomes)
    .describe("The grant's current access tokens, revoked too (token_type_hint=access_token)"),
  revokedAtProvider: z
    .object({ refreshToken: z.boolean(), accessTokens: z.number().int() })
    .describe("What the provider confirmed it revoked")
})

export const AuthorizeResponse = z.object({ authorizationUrl: z.string(), expiresAt: z.string() })

export const TokenExchangeResponse = z.object({
  access_token: z.string(),
  issued_token_type: z.literal(ACCESS_TOKEN_TYPE),
  token_type: z.literal("Bearer"),
  expires_in: z.number().int(),
  scope: z.string().optional()
})

/** An RFC 9457 problem; extension members (field, reason, provider, authorize...) vary by code. */
export const ProblemResponse = z
  .looseObject({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    detail: z.string(),
    code: z.string(),
    instance: z.string(),
    requestId: z.string()
  })
  .meta({ id: "Problem" })

export const OAuthErrorResponse = z.object({ error: z.string(), error_description: z.string() })

export const HealthResponse = z.object({ status: z.literal("ok") })

const CheckStatus = z.string().describe('"ok", "timeout", "failed" or the failing error\'s code')

export const ReadinessResponse = z.object({
  status: z.enum(["ready", "not_ready"]),
  checks: z.object({ storage: CheckStatus, providers: z.record(z.string(), CheckStatus) })
})
