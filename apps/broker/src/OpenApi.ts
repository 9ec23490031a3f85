import { z } from "zod"
import { ERROR_STATUS } from "./Problems.js"
import {
  AuthorizeBody,
  AuthorizeResponse,
  BackgroundTokenBody,
  GrantListResponse,
  GrantView,
  IssuedTokenResponse,
  OAuthErrorResponse,
  ProblemResponse,
  RejectedTokenBody,
  RevokeResponse,
  TokenExchangeFormDoc,
  TokenExchangeResponse
} from "./Schemas.js"

/** The OpenAPI 3.1 document of the HTTP broker, built from the same zod schemas the routes validate with. */

const schema = (type: z.ZodType, io: "input" | "output" = "output") => {
  const { $schema: _ignored, ...rest } = z.toJSONSchema(type, { io, unrepresentable: "any" }) as Record<
    string,
    unknown
  >
  return rest
}

const json = (type: z.ZodType, description: string) => ({
  description,
  content: { "application/json": { schema: schema(type) } }
})

const problem = (description: string) => ({
  description,
  content: { "application/problem+json": { schema: { $ref: "#/components/schemas/Problem" } } }
})

const pathParams = [
  { name: "subject", in: "path", required: true, schema: { type: "string", minLength: 1, maxLength: 256 } },
  {
    name: "provider",
    in: "path",
    required: true,
    schema: { type: "string", pattern: "^[A-Za-z0-9._-]{1,64}$" }
  }
]

const common = {
  "400": problem("Invalid request: the problem names the field"),
  "401": problem("Client authentication failed or is missing"),
  "403": problem("The caller's policy does not allow this (reason says which part)"),
  "429": problem("Rate limit of this caller exceeded; see Retry-After")
}

export const openApiDocument = (publicUrl: string) => ({
  openapi: "3.1.0",
  info: {
    title: "token-broker",
    version: "1",
    description:
      "Keeps users' upstream OAuth grants encrypted and hands out short-lived access tokens. Callers authenticate with HTTP Basic (their id and secret). Errors are RFC 9457 problem+json, except at /oauth/token (RFC 6749 error bodies).\n\nCore errors and their statuses: " +
      Object.entries(ERROR_STATUS)
        .map(([tag, { status }]) => `${tag} ${status}`)
        .join(", ")
  },
  servers: [{ url: publicUrl }],
  security: [{ basic: [] }],
  paths: {
    "/oauth/token": {
      post: {
        summary: "RFC 8693 token exchange",
        description:
          "Exchanges the user's own token (subject_token) for an upstream access token. Name the upstream by audience (provider id or resource) or resource. Client authentication: client_secret_basic or client_secret_post. Policy denials answer 403 with unauthorized_client, invalid_target or invalid_scope.",
        requestBody: {
          required: true,
          content: { "application/x-www-form-urlencoded": { schema: schema(TokenExchangeFormDoc, "input") } }
        },
        responses: {
          "200": json(TokenExchangeResponse, "RFC 8693 token response"),
          "400": json(
            OAuthErrorResponse,
            "invalid_request, invalid_target, invalid_scope, unsupported_grant_type"
          ),
          "401": json(OAuthErrorResponse, "invalid_client (with WWW-Authenticate)"),
          "403": json(
            OAuthErrorResponse,
            "unauthorized_client, invalid_target, invalid_scope: the caller's policy"
          ),
          "503": json(OAuthErrorResponse, "temporarily_unavailable (Retry-After)")
        }
      }
    },
    "/v1/grants/{subject}/{provider}/token": {
      post: {
        summary: "Background token from the stored grant",
        description:
          "An access token minted from the subject's stored grant (works while the user is offline). A caller restricted to scopes gets tokens with exactly its scopes unless it names a subset.",
        parameters: pathParams,
        requestBody: {
          required: false,
          content: { "application/json": { schema: schema(BackgroundTokenBody, "input") } }
        },
        responses: {
          "200": json(IssuedTokenResponse, "The token"),
          ...common,
          "404": problem("provider_not_found"),
          "409": problem("consent_required: the user must consent first (see `authorize`)"),
          "503": problem("upstream_unavailable or storage_unavailable, with Retry-After")
        }
      }
    },
    "/v1/grants/{subject}/{provider}/token/rejected": {
      post: {
        summary: "Report a background token the upstream API refused",
        description:
          "The upstream API answered 401 to a token this broker issued. The token is dropped from the broker's cache and store, so the next token call refreshes; when the newest token is refused after several refreshes in a row the grant is marked for consent (status reconsent_required).",
        parameters: pathParams,
        requestBody: {
          required: true,
          content: { "application/json": { schema: schema(RejectedTokenBody, "input") } }
        },
        responses: {
          "200": json(GrantView, "The grant after the report (metadata only)"),
          "204": { description: "No grant is stored for this subject and provider" },
          ...common,
          "503": problem("storage_unavailable, with Retry-After")
        }
      }
    },
    "/v1/grants": {
      get: {
        summary: "List grants (paged)",
        parameters: [
          { name: "subject", in: "query", schema: { type: "string" } },
          { name: "provider", in: "query", schema: { type: "string" } },
          { name: "status", in: "query", schema: { type: "string", enum: ["active", "reconsent_required"] } },
          { name: "limit", in: "query", schema: { type: "integer", minimum: 1, maximum: 1000, default: 50 } },
          { name: "cursor", in: "query", schema: { type: "string" } }
        ],
        responses: {
          "200": json(GrantListResponse, "A page of grants (metadata only, never a token)"),
          ...common
        }
      }
    },
    "/v1/grants/{subject}/{provider}": {
      get: {
        summary: "One grant's status",
        parameters: pathParams,
        responses: { "200": json(GrantView, "The grant"), ...common, "404": problem("grant_not_found") }
      },
      delete: {
        summary: "Revoke a grant",
        description:
          "Revokes the refresh token at the provider (RFC 7009) and deletes the grant, even when the provider call fails (reported).",
        parameters: pathParams,
        responses: { "200": json(RevokeResponse, "What was removed"), ...common }
      }
    },
    "/v1/grants/{subject}/{provider}/authorize": {
      post: {
        summary: "Start consent: the authorization URL",
        description:
          "Send the user's browser to authorizationUrl; the provider returns it to /connect/callback.",
        parameters: pathParams,
        requestBody: {
          required: false,
          content: { "application/json": { schema: schema(AuthorizeBody, "input") } }
        },
        responses: { "200": json(AuthorizeResponse, "Where to send the user"), ...common }
      }
    },
    "/connect/callback": {
      get: {
        summary: "Finishes consent in the user's browser",
        security: [],
        responses: {
          "200": { description: "HTML result page" },
          "400": { description: "HTML page saying what went wrong" }
        }
      }
    },
    "/healthz": { get: { summary: "Liveness", security: [], responses: { "200": { description: "ok" } } } },
    "/readyz": {
      get: {
        summary: "Readiness: storage and providers reachable",
        security: [],
        responses: {
          "200": { description: "ready" },
          "503": { description: "not ready, with the failing checks" }
        }
      }
    },
    "/metrics": {
      get: {
        summary: "Prometheus metrics",
        security: [],
        responses: { "200": { description: "text format 0.0.4" } }
      }
    },
    "/openapi.json": {
      get: { summary: "This document", security: [], responses: { "200": { description: "OpenAPI 3.1" } } }
    },
    "/docs": {
      get: { summary: "API documentation page", security: [], responses: { "200": { description: "HTML" } } }
    }
  },
  components: {
    securitySchemes: { basic: { type: "http", scheme: "basic", description: "The caller's id and secret" } },
    schemas: { Problem: schema(ProblemResponse) }
  }
})

const escapeHtml = (text: string): string => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)

type Doc = ReturnType<typeof openApiDocument>

/** A self-contained HTML page rendering the OpenAPI document (no scripts, nothing fetched from elsewhere). */
export const docsPage = (document: Doc): string => {
  const operations = Object.entries(document.paths).flatMap(([path, methods]) =>
    Object.entries(methods as Record<string, Record<string, unknown>>).map(([method, op]) => {
      const responses = Object.entries((op.responses ?? {}) as Record<string, { description: string }>)
        .map(([status, r]) => `<li><code>${status}</code> ${escapeHtml(r.description)}</li>`)
        .join("")
      const params = ((op.parameters ?? []) as Array<{ name: string; in: string }>)
        .map((p) => `<code>${escapeHtml(p.name)}</code> (${p.in})`)
        .join(", ")
      const body = op.requestBody as { content: Record<string, { schema: unknown }> } | undefined
      const bodyText =
        body === undefined
          ? ""
          : Object.entries(body.content)
              .map(
                ([type, c]) =>
                  `<details><summary>Body: ${escapeHtml(type)}</summary><pre>${escapeHtml(JSON.stringify(c.schema, null, 2))}</pre></details>`
              )
              .join("")
      return `<section><h2><span class="m">${method.toUpperCase()}</span> <code>${escapeHtml(path)}</code></h2>
<p><strong>${escapeHtml(String(op.summary ?? ""))}</strong></p>
${op.description === undefined ? "" : `<p>${escapeHtml(String(op.description))}</p>`}
${params === "" ? "" : `<p>Parameters: ${params}</p>`}
${bodyText}
<ul>${responses}</ul></section>`
    })
  )
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>token-broker API</title>
<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
section{border-top:1px solid #ddd;padding:.5rem 0}.m{background:#eef;padding:0 .4rem;border-radius:4px}
pre{background:#f6f8fa;padding:.5rem;overflow:auto}code{font-size:.95em}</style></head>
<body><h1>token-broker HTTP API</h1>
<p>${escapeHtml(document.info.description)}</p>
<p>Machine-readable: <a href="/openapi.json">/openapi.json</a> (OpenAPI 3.1).</p>
${operations.join("\n")}
</body></html>
`
}
