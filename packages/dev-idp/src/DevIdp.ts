import { randomBytes } from "node:crypto"
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"
import { createLocalJWKSet, exportJWK, generateKeyPair, type JSONWebKeySet, type JWK, jwtVerify } from "jose"
import type { ResourceServer } from "oidc-provider"
import { buildClients, type DevIdpClient } from "./Clients.js"
import {
  type DevIdpOptions,
  type DevIdpResource,
  type DevIdpResourceInput,
  DevIdpResourceSchema,
  type DevIdpUser,
  parseDevIdpOptions
} from "./Config.js"
import { TokenCounters } from "./Counters.js"
import { Faults } from "./Faults.js"
import { handleControl } from "./internal/ControlApi.js"
import { answerAfterCommit, applyFault } from "./internal/FaultAnswers.js"
import { readBody, sendEmpty, sendJson } from "./internal/Http.js"
import { handleInteraction, INTERACTION_PREFIX } from "./internal/Interactions.js"
import { loadOidcProvider } from "./internal/LoadProvider.js"
import { defaultUsers, providerConfiguration, recordTokenAnswers } from "./internal/ProviderConfig.js"
import { answerErrorsWith200, clientIdOf, handleRegistration, replayRequest } from "./internal/Requests.js"
import { currentEndpoint, endpointOf, Store } from "./internal/Store.js"
import {
  TOKEN_EXCHANGE_GRANT,
  TOKEN_EXCHANGE_PARAMETERS,
  tokenExchangeHandler
} from "./internal/TokenExchange.js"
import {
  type DriveAuthorizationOptions,
  driveAuthorization,
  type LoginOptions,
  login,
  type TokenResponse
} from "./LoginDriver.js"
import { NOTES_READ, NOTES_WRITE, NotesApi } from "./NotesApi.js"
import { Reuses } from "./Reuses.js"
import { Revocations } from "./Revocations.js"
import { Rotations } from "./Rotations.js"

/** The resource indicator of the opaque-token resource (its tokens can be introspected). */
export const OPAQUE_RESOURCE = "urn:token-broker:opaque"
const MCP_SCOPES = ["mcp:tools", NOTES_READ, NOTES_WRITE]

/** What `revokeGrantOf` looks a grant up by. */
export type GrantSelector =
  | { readonly refreshToken: string }
  | { readonly accessToken: string }
  | { readonly subject: string; readonly clientId?: string | undefined }

/** The endpoints of dev-idp, for a client configured without discovery. */
export interface DevIdpEndpoints {
  readonly authorization: string
  readonly token: string
  readonly revocation: string
  readonly introspection: string
  readonly jwks: string
  /** OpenID Connect userinfo (`/me`), or in plain OAuth 2.0 mode the GitHub-style `/user`. */
  readonly userinfo: string
}

export interface DevIdp {
  /** The issuer identifier, e.g. `http://127.0.0.1:41234`. */
  readonly issuer: string
  readonly endpoints: DevIdpEndpoints
  /** Whether it runs as a plain OAuth 2.0 provider (the `plainOAuth` option). */
  readonly plainOAuth: boolean
  /** `${issuer}/.well-known/openid-configuration` */
  readonly discoveryUrl: string
  /** Resource indicator and `aud` of the notes API: `${issuer}/notes`. */
  readonly notesAudience: string
  /** Base URL of the notes API: `${issuer}/notes/api/v1`. */
  readonly notesApiUrl: string
  /** `urn:token-broker:opaque`: tokens for it are opaque (introspectable). */
  readonly opaqueAudience: string
  /** The MCP resource, when `mcpAudience` was configured. */
  readonly mcpAudience: string | undefined
  readonly clients: ReadonlyArray<DevIdpClient>
  readonly users: ReadonlyArray<DevIdpUser>
  readonly resources: ReadonlyArray<DevIdpResource>
  readonly counters: TokenCounters
  readonly faults: Faults
  readonly revocations: Revocations
  /** Every presentation of a rotated-away refresh token (outside the grace period), by subject. */
  readonly reuses: Reuses
  /** Every refresh that rotated a refresh token (also one whose answer a fault then spoiled), by subject. */
  readonly rotations: Rotations
  readonly notes: NotesApi
  /** Looks up one client by id; throws when unknown. */
  client(clientId: string): DevIdpClient
  /** Adds a resource at run time (e.g. an MCP server whose port is known only after dev-idp started). */
  addResource(resource: DevIdpResourceInput): DevIdpResource
  driveAuthorization(authorizationUrl: string | URL, options: DriveAuthorizationOptions): Promise<URL>
  login(options: LoginOptions): Promise<TokenResponse>
  /**
   * Revokes grants server-side (every code, access and refresh token of the grant), as if the user
   * revoked the app at the provider. Returns how many grants were revoked.
   */
  revokeGrantOf(selector: GrantSelector): Promise<number>
  /**
   * How many of a user's refresh tokens would still refresh (unexpired, not rotated away, not revoked),
   * optionally of one client: after a grant is revoked, none should be left.
   */
  liveRefreshTokens(selector: { readonly subject: string; readonly clientId?: string }): number
  /** Stops the server and destroys every open connection, including hanging ones. */
  close(): Promise<void>
}

/**
 * Starts dev-idp: a real OpenID Provider (oidc-provider) with refresh-token rotation and reuse
 * detection, RFC 8693 token exchange, RFC 7009 revocation, RFC 7662 introspection, JWT access tokens
 * per resource, a stand-in notes API, and test controls. For development and tests only.
 */
export const startDevIdp = async (input: DevIdpOptions = {}): Promise<DevIdp> => {
  const options = parseDevIdpOptions(input)
  const { Provider, errors } = await loadOidcProvider()
  const users = options.users ?? defaultUsers()

  let handler: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => {
    res.writeHead(503).end()
  }
  const server: Server = createServer((req, res) => handler(req, res))
  server.keepAliveTimeout = 5_000
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject)
    server.listen(options.port, options.host, () => {
      server.off("error", reject)
      resolve()
    })
  })
  const address = server.address() as AddressInfo
  const hostForUrl = address.family === "IPv6" ? `[${address.address}]` : address.address
  const issuer = (options.issuer ?? `http://${hostForUrl}:${address.port}`).replace(/\/$/, "")
  if (new URL(issuer).pathname !== "/") {
    server.close()
    throw new Error("dev-idp: an issuer override must not have a path")
  }

  const notesAudience = `${issuer}/notes`
  const notesApiPath = "/notes/api/v1"
  const resources = new Map<string, DevIdpResource>()
  const addResource = (spec: DevIdpResourceInput): DevIdpResource => {
    const resource = DevIdpResourceSchema.parse(spec)
    resources.set(resource.audience, resource)
    return resource
  }
  addResource({ audience: notesAudience, scopes: [NOTES_READ, NOTES_WRITE], format: "jwt" })
  addResource({ audience: OPAQUE_RESOURCE, scopes: [NOTES_READ, NOTES_WRITE], format: "opaque" })
  if (options.mcpAudience !== undefined) addResource({ audience: options.mcpAudience, scopes: MCP_SCOPES })
  for (const resource of options.resources) addResource(resource)

  const resourceInfo = (indicator: string): ResourceServer | undefined => {
    const resource = resources.get(indicator)
    if (resource === undefined) return undefined
    return {
      scope: resource.scopes.join(" "),
      audience: resource.audience,
      accessTokenTTL: resource.accessTokenTtlSeconds ?? options.accessTokenTtlSeconds,
      accessTokenFormat: resource.format,
      ...(resource.format === "jwt" ? { jwt: { sign: { alg: "RS256" as const } } } : {})
    }
  }

  const { privateKey, publicKey } = await generateKeyPair("RS256", { extractable: true })
  const kid = `dev-idp-${randomBytes(6).toString("hex")}`
  const signingJwk: JWK = { ...(await exportJWK(privateKey)), kid, alg: "RS256", use: "sig" }
  const publicJwks: JSONWebKeySet = {
    keys: [{ ...(await exportJWK(publicKey)), kid, alg: "RS256", use: "sig" }]
  }

  const { clients, metadata } = await buildClients(issuer, options)
  const plain = options.plainOAuth !== undefined
  const localJwks = createLocalJWKSet(publicJwks)
  const endpoints: DevIdpEndpoints = {
    authorization: `${issuer}/auth`,
    token: `${issuer}/token`,
    revocation: `${issuer}/token/revocation`,
    introspection: `${issuer}/token/introspection`,
    jwks: `${issuer}/jwks`,
    userinfo: plain ? `${issuer}/user` : `${issuer}/me`
  }
  const reuses = new Reuses()
  const rotations = new Rotations()
  const store = new Store(
    options.refreshTokenReuseGraceSeconds,
    (payload, endpoint) =>
      reuses.record({
        subject: String(payload.accountId ?? ""),
        clientId: String(payload.clientId ?? ""),
        endpoint,
        at: Date.now()
      }),
    options.consumedRefreshTokenRevocation
  )
  const extraClaims = new WeakMap<object, Record<string, unknown>>()
  const userBySub = new Map(users.map((user) => [user.sub, user]))
  const counters = new TokenCounters()
  const faults = new Faults()
  const revocations = new Revocations()
  const notes = new NotesApi({ issuer, audience: notesAudience, jwks: publicJwks, basePath: notesApiPath })
  const lifetime = new AbortController()

  const provider = new Provider(
    issuer,
    providerConfiguration({
      options,
      store,
      metadata,
      signingJwk,
      users: userBySub,
      errors,
      notesAudience,
      resourceInfo,
      extraClaims,
      plain
    })
  )
  if (!plain) {
    provider.registerGrantType(
      TOKEN_EXCHANGE_GRANT,
      tokenExchangeHandler({
        provider,
        errors,
        publicJwks,
        resourceInfo,
        isUser: (sub) => userBySub.has(sub),
        extraClaims
      }),
      TOKEN_EXCHANGE_PARAMETERS
    )
  }
  recordTokenAnswers(provider, { plain, rotations, revocations })
  const providerCallback = provider.callback()

  const handleToken = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const body = await readBody(req)
    const params = new URLSearchParams(body.toString("utf8"))
    const grantType = params.get("grant_type") ?? undefined
    const clientId = clientIdOf(req.headers.authorization, params)
    counters.record(grantType, clientId)
    const fault = faults.take({ grantType, clientId })
    if (fault !== undefined && (await applyFault(fault, res, lifetime.signal)) === "handled") return
    if (res.destroyed) return
    if (fault?.kind === "after_commit") answerAfterCommit(fault, res)
    if (plain) answerErrorsWith200(res)
    providerCallback(replayRequest(req, body), res)
  }

  /** The RFC 8414 metadata of plain OAuth 2.0 mode: no OpenID Connect fields, no token exchange. */
  const authorizationServerMetadata = () => ({
    issuer,
    authorization_endpoint: endpoints.authorization,
    token_endpoint: endpoints.token,
    revocation_endpoint: endpoints.revocation,
    introspection_endpoint: endpoints.introspection,
    jwks_uri: endpoints.jwks,
    response_types_supported: ["code"],
    grant_types_supported: ["authorization_code", "refresh_token", "client_credentials"],
    code_challenge_methods_supported: ["S256"],
    token_endpoint_auth_methods_supported: ["client_secret_basic", "client_secret_post", "private_key_jwt"],
    scopes_supported: [...new Set([...resources.values()].flatMap((resource) => resource.scopes))],
    authorization_response_iss_parameter_supported: true
  })

  /** GitHub-style `GET /user`: the account of a (JWT) access token dev-idp issued. */
  const handleUser = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const header = req.headers.authorization ?? ""
    const token = /^bearer /i.test(header) ? header.slice(7).trim() : ""
    const verified = await jwtVerify(token, localJwks, { issuer }).catch(() => undefined)
    const user = typeof verified?.payload.sub === "string" ? userBySub.get(verified.payload.sub) : undefined
    if (user === undefined) {
      sendJson(
        res,
        401,
        { message: "Bad credentials" },
        { "www-authenticate": 'Bearer error="invalid_token"' }
      )
      return
    }
    sendJson(res, 200, {
      id: user.sub,
      login: user.username,
      ...(user.name === undefined ? {} : { name: user.name })
    })
  }

  let idp: DevIdp
  const control = { get: () => idp }

  const route = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? "/", issuer)
    const path = url.pathname
    // the notes API reads its query too (category, exclude)
    if (path === notesApiPath || path.startsWith(`${notesApiPath}/`)) {
      return notes.handle(req, res, `${path}${url.search}`)
    }
    if (path.startsWith("/__dev/")) {
      const handled = await handleControl(control.get(), options.controls, req, res, path)
      if (handled) return
    }
    if (path.startsWith(INTERACTION_PREFIX)) return handleInteraction({ provider, users }, req, res, path)
    if (req.method === "POST" && path === "/token") return handleToken(req, res)
    if (plain && path === "/.well-known/openid-configuration") return sendEmpty(res, 404)
    if (plain && path === "/.well-known/oauth-authorization-server") {
      if (options.plainOAuth?.metadata !== "oauth-authorization-server") return sendEmpty(res, 404)
      return sendJson(res, 200, authorizationServerMetadata())
    }
    if (plain && req.method === "GET" && path === "/user") return handleUser(req, res)
    if (req.method === "POST" && path === "/reg") return handleRegistration(providerCallback)(req, res)
    providerCallback(req, res)
  }

  handler = (req, res) => {
    currentEndpoint
      .run(endpointOf(req.url), () => route(req, res))
      .catch((error: unknown) => {
        if (lifetime.signal.aborted || res.headersSent || res.destroyed) {
          res.destroy()
          return
        }
        const message = error instanceof Error ? error.message : String(error)
        sendJson(res, 500, { error: "server_error", error_description: message })
      })
  }

  const findGrantId = async (selector: GrantSelector): Promise<string[]> => {
    if ("refreshToken" in selector) {
      const token = await provider.RefreshToken.find(selector.refreshToken, { ignoreExpiration: true })
      return token?.grantId === undefined ? [] : [token.grantId]
    }
    if ("accessToken" in selector) {
      const token = await provider.AccessToken.find(selector.accessToken, { ignoreExpiration: true })
      return token?.grantId === undefined ? [] : [token.grantId]
    }
    return store.findGrantIds(
      (payload) =>
        payload.accountId === selector.subject &&
        (selector.clientId === undefined || payload.clientId === selector.clientId)
    )
  }

  let closing: Promise<void> | undefined
  idp = {
    issuer,
    endpoints,
    plainOAuth: plain,
    discoveryUrl: `${issuer}/.well-known/openid-configuration`,
    notesAudience,
    notesApiUrl: `${issuer}${notesApiPath}`,
    opaqueAudience: OPAQUE_RESOURCE,
    mcpAudience: options.mcpAudience,
    clients,
    users,
    get resources() {
      return [...resources.values()]
    },
    counters,
    faults,
    revocations,
    reuses,
    rotations,
    notes,
    client: (clientId) => {
      const client = clients.find((candidate) => candidate.clientId === clientId)
      if (client === undefined) throw new Error(`dev-idp: unknown client ${clientId}`)
      return client
    },
    addResource,
    driveAuthorization: (authorizationUrl, driveOptions) =>
      driveAuthorization(authorizationUrl, driveOptions),
    login: (loginOptions) => login({ issuer, clients }, loginOptions),
    revokeGrantOf: async (selector) => {
      const grantIds = await findGrantId(selector)
      for (const grantId of grantIds) store.revokeGrant(grantId)
      return grantIds.length
    },
    liveRefreshTokens: (selector) =>
      store.countLiveRefreshTokens(
        (payload) =>
          payload.accountId === selector.subject &&
          (selector.clientId === undefined || payload.clientId === selector.clientId)
      ),
    close: () => {
      closing ??= new Promise<void>((resolve) => {
        lifetime.abort()
        store.close()
        server.close(() => resolve())
        server.closeAllConnections()
      })
      return closing
    }
  }
  return idp
}
