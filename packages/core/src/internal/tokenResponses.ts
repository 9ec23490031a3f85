import { Redacted } from "effect"
import type * as client from "openid-client"
import type { IntrospectionResult, TokenSet } from "../AuthorizationServer.js"
import type { ProviderConfig } from "../Provider.js"
import * as Scopes from "../Scopes.js"

const splitScopes = (scope: unknown): ReadonlyArray<string> | null =>
  typeof scope === "string" ? Scopes.split(scope) : null

const audienceList = (aud: unknown): ReadonlyArray<string> =>
  typeof aud === "string" ? [aud] : Array.isArray(aud) ? aud.filter((a) => typeof a === "string") : []

export const toTokenSet = (
  response: client.TokenEndpointResponse & client.TokenEndpointResponseHelpers,
  now: number,
  withIdToken: boolean
): TokenSet => {
  // `refresh_expires_in` (Keycloak, dev-idp) or `refresh_token_expires_in` (GitHub, Microsoft)
  const refreshExpiresIn = response.refresh_expires_in ?? response.refresh_token_expires_in
  const claims = withIdToken ? response.claims() : undefined
  return {
    accessToken: Redacted.make(response.access_token),
    tokenType: response.token_type,
    expiresAt: typeof response.expires_in === "number" ? now + response.expires_in * 1000 : null,
    refreshToken: typeof response.refresh_token === "string" ? Redacted.make(response.refresh_token) : null,
    refreshExpiresAt:
      typeof refreshExpiresIn === "number" && refreshExpiresIn > 0 ? now + refreshExpiresIn * 1000 : null,
    scopes: splitScopes(response.scope),
    issuedTokenType: typeof response.issued_token_type === "string" ? response.issued_token_type : null,
    idTokenClaims: claims === undefined ? null : { ...claims, iss: claims.iss, sub: claims.sub }
  }
}

/** The `refresh_token` of a JSON body that failed validation, when it has one. */
export const successorIn = (text: string): Redacted.Redacted<string> | null => {
  try {
    const body: unknown = JSON.parse(text)
    if (typeof body !== "object" || body === null) return null
    const token = (body as { refresh_token?: unknown }).refresh_token
    return typeof token === "string" && token.length > 0 ? Redacted.make(token) : null
  } catch {
    return null
  }
}

export const toIntrospection = (response: client.IntrospectionResponse): IntrospectionResult => ({
  active: response.active === true,
  subject: typeof response.sub === "string" ? response.sub : null,
  clientId: typeof response.client_id === "string" ? response.client_id : null,
  scopes: splitScopes(response.scope) ?? [],
  audience: audienceList(response.aud),
  issuer: typeof response.iss === "string" ? response.iss : null,
  expiresAt: typeof response.exp === "number" ? response.exp * 1000 : null,
  ...(typeof response.token_type === "string" ? { tokenType: response.token_type } : {})
})

/** Parameters shared by token requests: `scope` when any, `resource` when asked or configured. */
export const tokenParameters = (
  provider: ProviderConfig,
  scopes: ReadonlyArray<string> | undefined,
  resource: string | undefined
): Record<string, string> => {
  const parameters: Record<string, string> = {}
  if (scopes !== undefined && scopes.length > 0) parameters.scope = scopes.join(" ")
  const target = resource ?? provider.resource
  if (target !== undefined) parameters.resource = target
  return parameters
}
