import { createHash, randomBytes } from "node:crypto"
import { importJWK, SignJWT } from "jose"
import type { DevIdpClient } from "./Clients.js"

/** Why a headless login failed. */
export type LoginErrorCode =
  | "invalid_credentials"
  | "authorization_error"
  | "unexpected_response"
  | "too_many_redirects"
  | "token_error"
  | "unknown_client"

export class DevIdpLoginError extends Error {
  readonly code: LoginErrorCode
  /** The OAuth `error` where the provider named one. */
  readonly error: string | undefined
  constructor(code: LoginErrorCode, message: string, error?: string) {
    super(message)
    this.name = "DevIdpLoginError"
    this.code = code
    this.error = error
  }
}

export interface DriveAuthorizationOptions {
  readonly username: string
  readonly password: string
  /** Answer the consent page with "Allow" (default) or "Deny". */
  readonly consent?: boolean
}

/** A token endpoint response (RFC 6749 section 5.1) plus dev-idp's `refresh_expires_in`. */
export interface TokenResponse {
  readonly access_token: string
  readonly token_type: string
  readonly expires_in?: number
  readonly refresh_token?: string
  /** Seconds until the refresh token expires (absolute or idle expiry, whichever is first). */
  readonly refresh_expires_in?: number
  readonly id_token?: string
  readonly scope?: string
  readonly [key: string]: unknown
}

export interface LoginOptions {
  readonly clientId: string
  readonly username: string
  readonly password: string
  readonly scopes: ReadonlyArray<string>
  readonly resource?: string | ReadonlyArray<string>
  readonly redirectUri?: string
}

const MAX_STEPS = 20

const attribute = (html: string, name: string): string | undefined =>
  new RegExp(`${name}="([^"]*)"`).exec(html)?.[1]

const unescapeHtml = (value: string): string =>
  value
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&amp;/g, "&")

const formAction = (html: string, step: string): string | undefined => {
  for (const match of html.matchAll(/<form\b[^>]*>/g)) {
    const tag = match[0]
    if (attribute(tag, "data-step") === step) {
      const action = attribute(tag, "action")
      return action === undefined ? undefined : unescapeHtml(action)
    }
  }
  return undefined
}

/**
 * Follows dev-idp's own login and consent pages over plain HTTP with a cookie jar, the way a browser
 * would, and returns the redirect to the client's `redirect_uri` (with `code`, `state`, `iss` - or an
 * `error`) without calling it.
 */
export const driveAuthorization = async (
  authorizationUrl: string | URL,
  options: DriveAuthorizationOptions
): Promise<URL> => {
  const start = new URL(authorizationUrl)
  const redirectUri = start.searchParams.get("redirect_uri")
  const jar = new Map<string, string>()
  let url = start
  let method: "GET" | "POST" = "GET"
  let body: URLSearchParams | undefined
  let loginPosted = false

  for (let step = 0; step < MAX_STEPS; step++) {
    const headers: Record<string, string> = { accept: "text/html" }
    if (jar.size > 0) headers.cookie = [...jar].map(([name, value]) => `${name}=${value}`).join("; ")
    if (body !== undefined) headers["content-type"] = "application/x-www-form-urlencoded"
    const response = await fetch(url, {
      method,
      headers,
      redirect: "manual",
      ...(body === undefined ? {} : { body: body.toString() })
    })
    for (const cookie of response.headers.getSetCookie()) {
      const [pair] = cookie.split(";", 1)
      const index = pair?.indexOf("=") ?? -1
      if (pair === undefined || index <= 0) continue
      const name = pair.slice(0, index).trim()
      const value = pair.slice(index + 1).trim()
      if (value === "" || /expires=Thu, 01 Jan 1970/i.test(cookie)) jar.delete(name)
      else jar.set(name, value)
    }

    const location = response.headers.get("location")
    if (response.status >= 300 && response.status < 400 && location !== null) {
      await response.body?.cancel()
      const next = new URL(location, url)
      const target = `${next.origin}${next.pathname}`
      if ((redirectUri !== null && target === redirectUri) || next.origin !== start.origin) return next
      url = next
      method = "GET"
      body = undefined
      continue
    }

    const html = await response.text()
    const loginAction = formAction(html, "login")
    if (loginAction !== undefined) {
      if (loginPosted) {
        throw new DevIdpLoginError(
          "invalid_credentials",
          `dev-idp rejected the username or password for "${options.username}"`
        )
      }
      loginPosted = true
      url = new URL(loginAction, url)
      method = "POST"
      body = new URLSearchParams({ username: options.username, password: options.password })
      continue
    }
    const consentAction = formAction(html, options.consent === false ? "abort" : "consent")
    if (consentAction !== undefined) {
      url = new URL(consentAction, url)
      method = "POST"
      body = new URLSearchParams()
      continue
    }
    const error = /data-step="error" data-error="([^"]*)"/.exec(html)?.[1]
    const description = /<p data-error-description>([^<]*)<\/p>/.exec(html)?.[1]
    if (error !== undefined) {
      throw new DevIdpLoginError(
        "authorization_error",
        `the authorization request failed: ${unescapeHtml(error)}${description ? ` (${unescapeHtml(description)})` : ""}`,
        unescapeHtml(error)
      )
    }
    throw new DevIdpLoginError(
      "unexpected_response",
      `unexpected response ${response.status} from ${url.href} while driving the authorization`
    )
  }
  throw new DevIdpLoginError("too_many_redirects", `no callback after ${MAX_STEPS} steps`)
}

/** Client authentication for a request to one of dev-idp's endpoints, as the client's method says. */
export const clientAuthentication = async (
  client: DevIdpClient,
  audience: string
): Promise<{ headers: Record<string, string>; params: Record<string, string> }> => {
  switch (client.tokenEndpointAuthMethod) {
    case "client_secret_basic": {
      const credentials = `${encodeURIComponent(client.clientId)}:${encodeURIComponent(client.clientSecret ?? "")}`
      return {
        headers: { authorization: `Basic ${Buffer.from(credentials).toString("base64")}` },
        params: {}
      }
    }
    case "client_secret_post":
      return { headers: {}, params: { client_id: client.clientId, client_secret: client.clientSecret ?? "" } }
    case "private_key_jwt": {
      const jwk = client.privateJwk
      if (jwk === undefined)
        throw new DevIdpLoginError("unknown_client", `${client.clientId} has no private key`)
      const alg = jwk.alg ?? "ES256"
      const assertion = await new SignJWT({})
        .setProtectedHeader({ alg, ...(jwk.kid === undefined ? {} : { kid: jwk.kid }) })
        .setIssuer(client.clientId)
        .setSubject(client.clientId)
        .setAudience(audience)
        .setJti(randomBytes(16).toString("base64url"))
        .setIssuedAt()
        .setExpirationTime("60s")
        .sign(await importJWK(jwk, alg))
      return {
        headers: {},
        params: {
          client_id: client.clientId,
          client_assertion_type: "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
          client_assertion: assertion
        }
      }
    }
    default:
      return { headers: {}, params: { client_id: client.clientId } }
  }
}

export interface LoginContext {
  readonly issuer: string
  readonly clients: ReadonlyArray<DevIdpClient>
}

/**
 * A full authorization-code + PKCE (S256) login: builds the authorization URL (with `prompt=consent`
 * when `offline_access` is asked, so a refresh token is issued), drives the login and consent pages,
 * and exchanges the code. Returns the token response.
 */
export const login = async (context: LoginContext, options: LoginOptions): Promise<TokenResponse> => {
  const client = context.clients.find((candidate) => candidate.clientId === options.clientId)
  if (client === undefined) throw new DevIdpLoginError("unknown_client", `unknown client ${options.clientId}`)
  const redirectUri = options.redirectUri ?? client.redirectUris[0]
  if (redirectUri === undefined)
    throw new DevIdpLoginError("unknown_client", `${client.clientId} has no redirect URI`)

  const verifier = randomBytes(32).toString("base64url")
  const state = randomBytes(16).toString("base64url")
  const nonce = randomBytes(16).toString("base64url")
  const authorization = new URL(`${context.issuer}/auth`)
  const query = authorization.searchParams
  query.set("client_id", client.clientId)
  query.set("response_type", "code")
  query.set("redirect_uri", redirectUri)
  query.set("scope", options.scopes.join(" "))
  query.set("state", state)
  // a nonce belongs in an ID token: plain OAuth 2.0 requests (no `openid`) carry none
  if (options.scopes.includes("openid")) query.set("nonce", nonce)
  query.set("code_challenge", createHash("sha256").update(verifier).digest("base64url"))
  query.set("code_challenge_method", "S256")
  if (options.scopes.includes("offline_access")) query.set("prompt", "consent")
  const resources = options.resource === undefined ? [] : [options.resource].flat()
  for (const resource of resources) query.append("resource", resource)

  const callback = await driveAuthorization(authorization, options)
  const error = callback.searchParams.get("error")
  if (error !== null) {
    const description = callback.searchParams.get("error_description")
    throw new DevIdpLoginError(
      "authorization_error",
      `authorization failed: ${error}${description === null ? "" : ` (${description})`}`,
      error
    )
  }
  if (callback.searchParams.get("state") !== state) {
    throw new DevIdpLoginError("unexpected_response", "state mismatch in the callback")
  }
  const code = callback.searchParams.get("code")
  if (code === null) throw new DevIdpLoginError("unexpected_response", "no code in the callback")

  const auth = await clientAuthentication(client, context.issuer)
  const body = new URLSearchParams({
    grant_type: "authorization_code",
    code,
    redirect_uri: redirectUri,
    code_verifier: verifier,
    ...auth.params
  })
  if (resources.length === 1 && resources[0] !== undefined) body.set("resource", resources[0])
  const response = await fetch(`${context.issuer}/token`, {
    method: "POST",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      accept: "application/json",
      ...auth.headers
    },
    body: body.toString()
  })
  const json = (await response.json()) as Record<string, unknown>
  if (!response.ok || typeof json.access_token !== "string") {
    const oauthError = typeof json.error === "string" ? json.error : undefined
    throw new DevIdpLoginError(
      "token_error",
      `code exchange failed with ${response.status}: ${oauthError ?? "no error code"}`,
      oauthError
    )
  }
  return json as TokenResponse
}
