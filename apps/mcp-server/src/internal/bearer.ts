import { Scopes } from "@token-broker/core"
import type { ScopePolicy } from "../Scopes.js"

/** Quotes a value for an RFC 9110 auth-param (`"` and `\` escaped; anything but printable ASCII replaced). */
const quoted = (value: string): string =>
  `"${value.replace(/[^\x20-\x7e]/g, " ").replace(/["\\]/g, (c) => `\\${c}`)}"`

/**
 * The `WWW-Authenticate` challenge of this protected resource (RFC 6750, RFC 9728 section 5.1): always
 * names the metadata document, the scope to ask for where there is one, and `error` only when a token
 * was presented.
 */
export const challenge = (options: {
  readonly resourceMetadata: string
  readonly scopes: ReadonlyArray<string>
  readonly error?: "invalid_token" | "insufficient_scope" | "invalid_request" | undefined
  readonly description?: string | undefined
}): string => {
  const params = [`resource_metadata=${quoted(options.resourceMetadata)}`]
  if (options.scopes.length > 0) params.push(`scope=${quoted(Scopes.join(options.scopes))}`)
  if (options.error !== undefined) params.push(`error=${quoted(options.error)}`)
  if (options.description !== undefined) params.push(`error_description=${quoted(options.description)}`)
  return `Bearer ${params.join(", ")}`
}

/** The token of an `Authorization: Bearer <token>` header; undefined when there is none or another scheme. */
export const bearerToken = (header: string | undefined): string | undefined => {
  if (header === undefined) return undefined
  const match = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i.exec(header)
  return match?.[1]
}

/** The scopes a JSON-RPC message (or batch) needs: the base scopes, plus the named tool's own for `tools/call`. */
export const scopesNeeded = (policy: ScopePolicy, body: unknown): ReadonlyArray<string> => {
  const needed = new Set(policy.base)
  const messages = Array.isArray(body) ? body : [body]
  for (const message of messages) {
    if (typeof message !== "object" || message === null) continue
    const { method, params } = message as { method?: unknown; params?: unknown }
    if (method !== "tools/call" || typeof params !== "object" || params === null) continue
    const name = (params as { name?: unknown }).name
    if (typeof name !== "string") continue
    for (const scope of policy.byTool[name] ?? []) needed.add(scope)
  }
  return [...needed]
}

/** For a step-up (RFC 6750 insufficient_scope): what the token has plus what is missing, in a stable order. */
export const stepUpScopes = (
  policy: ScopePolicy,
  granted: ReadonlyArray<string>,
  needed: ReadonlyArray<string>
): ReadonlyArray<string> => {
  const all = new Set([...granted, ...needed])
  return [
    ...policy.supported.filter((scope) => all.has(scope)),
    ...[...all].filter((scope) => !policy.supported.includes(scope)).sort()
  ]
}
