import { createLocalJWKSet, type JSONWebKeySet, jwtVerify } from "jose"
import type Provider from "oidc-provider"
import type { errors as OidcErrors, ResourceServer, TokenEndpointGrantContext } from "oidc-provider"

export const TOKEN_EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
export const ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"

export const TOKEN_EXCHANGE_PARAMETERS = [
  "subject_token",
  "subject_token_type",
  "actor_token",
  "actor_token_type",
  "requested_token_type",
  "audience",
  "resource",
  "scope"
] as const

/** What dev-idp knows about an access token it issued itself. */
export interface InspectedToken {
  readonly sub: string
  readonly clientId: string | undefined
  readonly scopes: ReadonlySet<string>
  readonly act: Record<string, unknown> | undefined
  /** Whether the subject is a user (an account) rather than a client. */
  readonly isUser: boolean
}

export interface TokenExchangeDeps {
  readonly provider: Provider
  readonly errors: typeof OidcErrors
  readonly publicJwks: JSONWebKeySet
  readonly resourceInfo: (indicator: string) => ResourceServer | undefined
  readonly isUser: (sub: string) => boolean
  /** Extra claims to put into a token being minted (read by `extraTokenClaims`). */
  readonly extraClaims: WeakMap<object, Record<string, unknown>>
}

const asString = (value: unknown): string | undefined => (typeof value === "string" ? value : undefined)
const scopeSet = (scope: unknown): Set<string> =>
  new Set(typeof scope === "string" ? scope.split(" ").filter((s) => s.length > 0) : [])

/**
 * Validates an access token issued by this provider: a JWT access token by signature, `typ`,
 * issuer and expiry; an opaque one by lookup (access token or client-credentials token).
 */
export const inspectAccessToken = async (
  deps: Pick<TokenExchangeDeps, "provider" | "publicJwks" | "isUser">,
  token: string
): Promise<InspectedToken | undefined> => {
  const { provider } = deps
  if (token.split(".").length === 3) {
    try {
      const { payload } = await jwtVerify(token, createLocalJWKSet(deps.publicJwks), {
        issuer: provider.issuer,
        typ: "at+jwt"
      })
      const sub = payload.sub
      if (sub === undefined) return undefined
      const clientId = asString(payload.client_id)
      const act = payload.act
      return {
        sub,
        clientId,
        scopes: scopeSet(payload.scope),
        act: act !== null && typeof act === "object" ? (act as Record<string, unknown>) : undefined,
        isUser: sub !== clientId && deps.isUser(sub)
      }
    } catch {
      return undefined
    }
  }
  const accessToken = await provider.AccessToken.find(token)
  if (accessToken?.isValid) {
    if (accessToken.grantId !== undefined && (await provider.Grant.find(accessToken.grantId)) === undefined) {
      return undefined
    }
    const extra = accessToken.extra as Record<string, unknown> | undefined
    const act = extra?.act
    return {
      sub: accessToken.accountId,
      clientId: accessToken.clientId,
      scopes: scopeSet(accessToken.scope),
      act: act !== null && typeof act === "object" ? (act as Record<string, unknown>) : undefined,
      isUser: deps.isUser(accessToken.accountId)
    }
  }
  const clientCredentials = await provider.ClientCredentials.find(token)
  if (clientCredentials?.isValid && clientCredentials.clientId !== undefined) {
    return {
      sub: clientCredentials.clientId,
      clientId: clientCredentials.clientId,
      scopes: scopeSet(clientCredentials.scope),
      act: undefined,
      isUser: false
    }
  }
  return undefined
}

/** The RFC 8693 token-exchange grant handler (access token in, access token out, no refresh token). */
export const tokenExchangeHandler =
  (deps: TokenExchangeDeps) =>
  async (ctx: TokenEndpointGrantContext): Promise<void> => {
    const { provider, errors } = deps
    const params = ctx.oidc.params
    const subjectToken = asString(params.subject_token)
    if (subjectToken === undefined)
      throw new errors.InvalidRequest("missing required parameter 'subject_token'")
    if (params.subject_token_type !== ACCESS_TOKEN_TYPE) {
      throw new errors.InvalidRequest(
        `unsupported subject_token_type, only ${ACCESS_TOKEN_TYPE} is supported`
      )
    }
    const requestedType = asString(params.requested_token_type)
    if (requestedType !== undefined && requestedType !== ACCESS_TOKEN_TYPE) {
      throw new errors.InvalidRequest(
        `unsupported requested_token_type, only ${ACCESS_TOKEN_TYPE} is supported`
      )
    }

    const subject = await inspectAccessToken(deps, subjectToken)
    if (subject === undefined) throw new errors.InvalidGrant("subject_token is invalid, expired or revoked")
    if (!subject.isUser) throw new errors.InvalidGrant("subject_token does not represent a user")

    const resource = params.resource
    if (Array.isArray(resource)) {
      throw new errors.InvalidTarget("only a single resource indicator is supported for token exchange")
    }
    const audience = asString(params.audience)
    const resourceParam = asString(resource)
    if (audience !== undefined && resourceParam !== undefined && audience !== resourceParam) {
      throw new errors.InvalidTarget("audience and resource name different targets")
    }
    const target = resourceParam ?? audience
    if (target === undefined) throw new errors.InvalidTarget("audience or resource is required")
    const info = deps.resourceInfo(target)
    if (info === undefined) throw new errors.InvalidTarget(`unknown audience/resource ${target}`)
    const resourceScopes = new Set(info.scope.split(" "))

    const requested =
      params.scope === undefined
        ? [...subject.scopes].filter((scope) => resourceScopes.has(scope))
        : [...scopeSet(params.scope)]
    const beyondSubject = requested.filter((scope) => !subject.scopes.has(scope))
    if (beyondSubject.length > 0) {
      throw new errors.InvalidScope(
        "requested scope exceeds the subject token's scope",
        beyondSubject.join(" ")
      )
    }
    const unknownToTarget = requested.filter((scope) => !resourceScopes.has(scope))
    if (unknownToTarget.length > 0) {
      throw new errors.InvalidScope("requested scope is not known to the target", unknownToTarget.join(" "))
    }
    if (requested.length === 0) throw new errors.InvalidScope("no scope left to grant for the target", "")

    let act: Record<string, unknown> | undefined
    const actorToken = asString(params.actor_token)
    if (actorToken !== undefined) {
      if (params.actor_token_type !== ACCESS_TOKEN_TYPE) {
        throw new errors.InvalidRequest(
          `unsupported actor_token_type, only ${ACCESS_TOKEN_TYPE} is supported`
        )
      }
      const actor = await inspectAccessToken(deps, actorToken)
      if (actor === undefined) throw new errors.InvalidGrant("actor_token is invalid, expired or revoked")
      act = { sub: actor.sub, ...(subject.act === undefined ? {} : { act: subject.act }) }
    } else if (params.actor_token_type !== undefined) {
      throw new errors.InvalidRequest("actor_token_type given without actor_token")
    }

    // An exchanged token belongs to the exchanging client, not to the subject token's grant, so it
    // has no grantId (oidc-provider's typings demand one; the model does not).
    const accessToken = new provider.AccessToken({
      accountId: subject.sub,
      client: ctx.oidc.client,
      gty: TOKEN_EXCHANGE_GRANT,
      scope: requested.join(" ")
    } as ConstructorParameters<typeof provider.AccessToken>[0])
    accessToken.resourceServer = new provider.ResourceServer(target, info)
    if (act !== undefined) deps.extraClaims.set(accessToken, { act })
    ctx.oidc.entity("AccessToken", accessToken)
    const value = await accessToken.save()

    ctx.body = {
      access_token: value,
      issued_token_type: ACCESS_TOKEN_TYPE,
      token_type: "Bearer",
      expires_in: accessToken.expiration,
      scope: accessToken.scope
    }
  }
