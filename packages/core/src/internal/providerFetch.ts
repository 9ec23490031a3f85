import { Context, Effect } from "effect"
import type * as client from "openid-client"
import { Agent } from "undici"
import type { ProviderConfig } from "../Provider.js"
import { type LinkedSignal, linkedSignal } from "./linkedSignal.js"

/**
 * Provider connections are kept alive for one second of idleness at most. A pooled connection that sat
 * idle for about the server's own keep-alive timeout can be closed by the server just as a request is
 * written on it; that request fails as a network error, and since a refresh is never retried after a
 * network error (the provider may have rotated the token), every caller sharing it would fail. No common
 * server closes idle connections sooner than a second, so the race cannot happen.
 */
const newAgent = () => new Agent({ keepAliveTimeout: 1_000, keepAliveMaxTimeout: 1_000 })

let fallback: Agent | undefined

/**
 * The HTTP agent (connection pool) of provider requests. The layers acquire one with `acquireAgent` and
 * close it on release; a client built outside a layer (`make` run by hand) shares one agent created on
 * its first use and kept for the life of the process.
 */
export class ProviderAgent extends Context.Reference<ProviderAgent>()(
  "@token-broker/core/internal/ProviderAgent",
  {
    defaultValue: (): { readonly agent: () => Agent } => ({
      agent: () => {
        fallback ??= newAgent()
        return fallback
      }
    })
  }
) {}

/** A fresh agent for as long as the scope lasts: closed (idle sockets dropped) when the scope closes. */
export const acquireAgent = Effect.acquireRelease(Effect.sync(newAgent), (agent) =>
  Effect.promise(() => agent.close())
)

/** Runs `make` with a fresh agent that is closed when the layer's scope closes. */
export const withScopedAgent = <A, E, R>(make: Effect.Effect<A, E, R>) =>
  Effect.flatMap(acquireAgent, (agent) => Effect.provideService(make, ProviderAgent, { agent: () => agent }))

/** Each response keeps its request's signal link (and so openid-client's timeout) reachable. */
const keepAlive = new WeakMap<Response, LinkedSignal>()

/** A request's own rewriting fetch: public-to-internal rewrite, plus the caller's AbortSignal. */
export const makeFetch =
  (
    dispatcher: Agent,
    rewrite: ProviderConfig["internalBaseUrl"],
    interrupt: AbortSignal | undefined,
    onResponse?: (response: Response) => void,
    invalidGrantErrors: ReadonlyArray<string> = []
  ): client.CustomFetch =>
  async (url, options) => {
    // openid-client's own timeout signal is held strongly by `link` (see linkedSignal), and `link` by
    // the response, for as long as openid-client reads it
    const link = linkedSignal([options.signal, interrupt])
    const init: RequestInit & { duplex?: "half" } = {
      // The same undici major as Node's own fetch; only the type packages differ.
      dispatcher: dispatcher as unknown as NonNullable<RequestInit["dispatcher"]>,
      method: options.method,
      headers: options.headers,
      redirect: options.redirect,
      body: (options.body ?? null) as NonNullable<RequestInit["body"]> | null,
      signal: link.signal
    }
    if (options.duplex !== undefined) init.duplex = options.duplex
    const answer = await fetch(rewriteUrl(rewrite, url), init).catch((error: unknown) => {
      link.done()
      throw error
    })
    const response = options.method === "POST" ? await errorBodyAsError(answer, invalidGrantErrors) : answer
    keepAlive.set(response, link)
    onResponse?.(response)
    return response
  }

const ERROR_BODY_LIMIT = 16 * 1024

/**
 * An OAuth error in the body of an answer to a POST (token, revocation, introspection) becomes an RFC 6749
 * error answer: JSON, status 400 where the provider sent a 2xx (GitHub answers errors with 200, as JSON or
 * as a form body, by the Accept header), and `error` renamed to `invalid_grant` where the provider names a
 * dead grant otherwise (`invalidGrantErrors`, e.g. GitHub's `bad_refresh_token`). A body with an
 * `access_token` is never an error. Every other answer is passed on untouched.
 */
const errorBodyAsError = async (
  response: Response,
  invalidGrantErrors: ReadonlyArray<string>
): Promise<Response> => {
  if (!(response.ok || (response.status >= 400 && response.status < 500))) return response
  const type = (response.headers.get("content-type") ?? "").split(";")[0]?.trim().toLowerCase() ?? ""
  const form = type === "application/x-www-form-urlencoded"
  const json = type === "application/json" || type.endsWith("+json")
  // a JSON 4xx is already an RFC 6749 error answer, unless its error needs renaming
  if (!(form || json) || (!response.ok && json && invalidGrantErrors.length === 0)) return response
  if (Number(response.headers.get("content-length") ?? "0") > ERROR_BODY_LIMIT) return response
  const text = await response
    .clone()
    .text()
    .catch(() => "")
  if (text.length > ERROR_BODY_LIMIT) return response
  const fields = form ? Object.fromEntries(new URLSearchParams(text)) : jsonObject(text)
  if (fields === undefined || typeof fields.error !== "string" || "access_token" in fields) return response
  const error = invalidGrantErrors.includes(fields.error) ? "invalid_grant" : fields.error
  if (!response.ok && json && error === fields.error) return response
  const body: Record<string, unknown> = { error }
  if (typeof fields.error_description === "string") body.error_description = fields.error_description
  if (typeof fields.error_uri === "string") body.error_uri = fields.error_uri
  const headers = new Headers(response.headers)
  headers.set("content-type", "application/json")
  headers.delete("content-length")
  headers.delete("content-encoding")
  await response.body?.cancel().catch(() => undefined)
  return new Response(JSON.stringify(body), {
    status: response.ok ? 400 : response.status,
    statusText: response.ok ? "Bad Request" : response.statusText,
    headers
  })
}

export const jsonObject = (text: string): Record<string, unknown> | undefined => {
  try {
    const body: unknown = JSON.parse(text)
    return typeof body === "object" && body !== null && !Array.isArray(body)
      ? (body as Record<string, unknown>)
      : undefined
  } catch {
    return undefined
  }
}

/** `from` matches a whole origin or path prefix: `https://idp.example` never matches `https://idp.example.evil`. */
export const rewriteUrl = (rewrite: ProviderConfig["internalBaseUrl"], url: string): string => {
  if (rewrite === undefined || !url.startsWith(rewrite.from)) return url
  const rest = url.slice(rewrite.from.length)
  if (rewrite.from.endsWith("/") || rest === "" || /^[/?#]/.test(rest)) return rewrite.to + rest
  return url
}
