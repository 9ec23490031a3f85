import { ZodIssues } from "@token-broker/core"
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from "fastify"
import {
  hasZodFastifySchemaValidationErrors,
  type ZodFastifySchemaValidationError
} from "fastify-type-provider-zod"
import { HttpOAuthError, HttpProblem, type OAuthError, type Problem, problemBody } from "./Problems.js"

/**
 * How refusals are written: RFC 9457 problem+json everywhere, RFC 6749 error bodies at the token
 * endpoint (a route's `config.errors`). Every error of a route - ours, core's, a failed schema, fastify's
 * own (parsing, content type, size, routing) - ends in one of the two. Bodies are sent already serialized,
 * so a route's answer schemas (which describe its successes) never touch them.
 */
declare module "fastify" {
  interface FastifyContextConfig {
    /** How errors are written: RFC 9457 problem+json, or RFC 6749 at the token endpoint. */
    errors?: "problem" | "oauth"
  }
}

const pathOf = (request: FastifyRequest) => request.url.split("?")[0] ?? "/"

export const sendProblem = (request: FastifyRequest, reply: FastifyReply, problem: Problem) => {
  request.log.debug({ status: problem.status, code: problem.code, detail: problem.detail }, "request refused")
  for (const [name, value] of Object.entries(problem.headers ?? {})) void reply.header(name, value)
  return reply
    .code(problem.status)
    .type("application/problem+json")
    .send(JSON.stringify(problemBody(problem, pathOf(request), request.id)))
}

export const sendOAuth = (reply: FastifyReply, error: OAuthError) => {
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
    .send(JSON.stringify({ error: error.error, error_description: error.description }))
}

const invalid = (detail: string, extensions?: Problem["extensions"]): Problem => ({
  status: 400,
  code: "invalid_request",
  title: "Invalid request",
  detail,
  extensions
})

/** Where a failed schema sits, as the problem names it. */
const WHERE: Readonly<Record<string, string>> = { params: "path", querystring: "query", body: "body" }

/**
 * The zod issue that fastify-type-provider-zod turned into a validation error (code, path and message
 * moved out, the rest kept in `params`), for core's formatter. A path segment of digits is a list index.
 */
const zodIssueOf = (error: ZodFastifySchemaValidationError): ZodIssues.ZodIssue =>
  ({
    ...error.params,
    code: error.keyword,
    message: error.message,
    path: error.instancePath
      .split("/")
      .filter((segment) => segment.length > 0)
      .map((segment) => (/^\d+$/.test(segment) ? Number(segment) : segment))
  }) as ZodIssues.ZodIssue

/**
 * A failed route schema in core's one wording of zod issues (`scopes[0]: expected string, received
 * number`), the part of the request (path, query, body) as the root: `field` names the first problem.
 */
export const validationProblem = (
  errors: ReadonlyArray<ZodFastifySchemaValidationError>,
  context: string | undefined
): Problem => {
  const root = WHERE[context ?? ""] ?? context ?? "request"
  const issues = errors.map(zodIssueOf)
  return invalid(ZodIssues.formatZodIssues(issues, { root }), {
    field: ZodIssues.firstZodProblem(issues, { root })?.field ?? root
  })
}

/** Fastify's own 4xx errors (parsing, content type, size) as problems. */
const frameworkProblem = (
  error: { code?: string | undefined; statusCode?: number | undefined; message: string },
  bodyLimit: number
): Problem => {
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
        detail: `The body is larger than ${bodyLimit} bytes`
      }
    case "FST_ERR_CTP_INVALID_JSON_BODY":
    case "FST_ERR_CTP_EMPTY_JSON_BODY":
      return invalid("The body is not valid JSON")
    case "FST_ERR_CTP_INVALID_CONTENT_LENGTH":
      return invalid("Content-Length does not match the body")
    default:
      return {
        status,
        code: status === 404 ? "not_found" : "invalid_request",
        title: status === 404 ? "Not found" : "Invalid request",
        detail: status >= 500 ? "Internal error" : error.message.slice(0, 200)
      }
  }
}

/** A problem at the token endpoint, in RFC 6749's words. */
const asOAuth = (problem: Problem): OAuthError => ({
  status: problem.status,
  error:
    problem.status >= 500
      ? "server_error"
      : problem.status === 401
        ? "invalid_client"
        : problem.code === "forbidden"
          ? "unauthorized_client"
          : problem.status === 429
            ? "slow_down"
            : "invalid_request",
  description: problem.detail,
  headers: problem.headers
})

/** Errors fastify raises before a route is known (a URL it cannot decode): the `frameworkErrors` option. */
export const frameworkErrorReply = (error: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
  // an answer made here skips the onSend hooks, which set the request id on every other one
  void reply.header("x-request-id", request.id)
  void sendProblem(request, reply, {
    ...invalid(
      error.code === "FST_ERR_BAD_URL"
        ? "The URL is not well-formed (bad percent-encoding)"
        : "The request is not well-formed"
    )
  })
}

/** The error handler and the not-found handler of the whole server. */
export const installErrorReplies = (app: FastifyInstance, options: { readonly bodyLimit: number }) => {
  app.setErrorHandler((error: unknown, request, reply) => {
    const oauth = request.routeOptions.config?.errors === "oauth"
    if (error instanceof HttpOAuthError) return sendOAuth(reply, error.oauth)
    let problem: Problem
    if (error instanceof HttpProblem) {
      problem = error.problem
    } else if (hasZodFastifySchemaValidationErrors(error)) {
      problem = validationProblem(
        error.validation,
        (error as { validationContext?: string }).validationContext
      )
    } else {
      const e = error as { code?: string; statusCode?: number; message?: string }
      const status = typeof e.statusCode === "number" ? e.statusCode : 500
      if (status >= 500) request.log.error({ err: { message: e.message, code: e.code } }, "request failed")
      problem = frameworkProblem(
        { code: e.code, statusCode: status, message: String(e.message ?? "") },
        options.bodyLimit
      )
    }
    return oauth ? sendOAuth(reply, asOAuth(problem)) : sendProblem(request, reply, problem)
  })

  app.setNotFoundHandler((request, reply) =>
    sendProblem(request, reply, {
      status: 404,
      code: "not_found",
      title: "Not found",
      detail: `No route ${request.method} ${pathOf(request).slice(0, 200)}; see /docs`
    })
  )
}
