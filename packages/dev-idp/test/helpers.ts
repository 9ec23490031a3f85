import { decodeJwt, decodeProtectedHeader, importJWK } from "jose"
import * as oauth from "openid-client"
import type { DevIdp, DevIdpUser, TokenResponse } from "../src/index.js"

export const SCOPES = ["openid", "offline_access", "notes:read", "notes:write"]

/** openid-client configured for one of dev-idp's clients, the way a broker would configure it. */
export const configFor = async (idp: DevIdp, clientId: string): Promise<oauth.Configuration> => {
  const client = idp.client(clientId)
  let auth: oauth.ClientAuth
  switch (client.tokenEndpointAuthMethod) {
    case "client_secret_basic":
      auth = oauth.ClientSecretBasic(client.clientSecret)
      break
    case "client_secret_post":
      auth = oauth.ClientSecretPost(client.clientSecret)
      break
    case "private_key_jwt": {
      const key = await importJWK(client.privateJwk!, "ES256")
      auth = oauth.PrivateKeyJwt(key as Parameters<typeof oauth.PrivateKeyJwt>[0])
      break
    }
    default:
      auth = oauth.None()
  }
  return oauth.discovery(new URL(idp.issuer), clientId, undefined, auth, {
    execute: [oauth.allowInsecureRequests]
  })
}

export const alice = (idp: DevIdp): DevIdpUser => idp.users.find((u) => u.username === "alice")!
export const bob = (idp: DevIdp): DevIdpUser => idp.users.find((u) => u.username === "bob")!

export const loginAlice = (
  idp: DevIdp,
  overrides: { clientId?: string; scopes?: string[]; resource?: string } = {}
): Promise<TokenResponse> =>
  idp.login({
    clientId: overrides.clientId ?? "token-broker",
    username: alice(idp).username,
    password: alice(idp).password,
    scopes: overrides.scopes ?? SCOPES,
    ...(overrides.resource === undefined ? {} : { resource: overrides.resource })
  })

export const claims = (jwt: string) => decodeJwt(jwt)
export const header = (jwt: string) => decodeProtectedHeader(jwt)

/** Runs the promise and returns the OAuth error it failed with (fails the test when it succeeds). */
export const oauthError = async (promise: Promise<unknown>): Promise<{ error: string; status: number }> => {
  try {
    await promise
  } catch (error) {
    if (error instanceof oauth.ResponseBodyError) return { error: error.error, status: error.status }
    if (error instanceof oauth.WWWAuthenticateChallengeError) {
      const code = error.cause[0]?.parameters.error
      if (code !== undefined) return { error: code, status: error.status }
    }
    // openid-client treats 5xx answers as non-conforming responses: the Response is the cause
    if (error instanceof oauth.ClientError && error.cause instanceof Response) {
      const body = (await error.cause.json().catch(() => ({}))) as { error?: unknown }
      return { error: typeof body.error === "string" ? body.error : "", status: error.cause.status }
    }
    throw error
  }
  throw new Error("expected an OAuth error response, but the request succeeded")
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
