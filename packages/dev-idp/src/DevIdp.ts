import { randomBytes } from "node:crypto"
import { createServer, IncomingMessage, type Server, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"
import { setTimeout as sleep } from "node:timers/promises"
import { createLocalJWKSet, exportJWK, generateKeyPair, type JSONWebKeySet, type JWK, jwtVerify } from "jose"
import type { Configuration, KoaContextWithOIDC, ResourceServer } from "oidc-provider"
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
import { type Fault, Faults } from "./Faults.js"
import { handleControl } from "./internal/ControlApi.js"
import { readBody, sendEmpty, sendJson } from "./internal/Http.js"
import { errorPage, handleInteraction, INTERACTION_PREFIX } from "./internal/Interactions.js"
import { loadOidcProvider } from "./internal/LoadProvider.js"
import { Store } from "./internal/Store.js"
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
const OIDC_SCOPES = ["openid", "profile", "email", "offline_access"]

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
  /** Stops the server and destroys every open connection, including hanging ones. */
  close(): Promise<void>
}

const defaultUsers = (): DevIdpUser[] => [
  {
    sub: "u-alice",
    username: "alice",
    password: randomBytes(9).toString("base64url"),
    name: "Alice Example",
    email: "alice@example.test"
  },
  {
    sub: "u-bob",
    username: "bob",
    password: randomBytes(9).toString("base64url"),
    name: "Bob Example",
    email: "bob@example.test"
  }
]

const clientIdOf = (authorization: string | undefined, params: URLSearchParams): string | undefined => {
  if (authorization !== undefined && /^basic /i.test(authorization)) {
    const decoded = Buffer.from(authorization.slice(6).trim(), "base64").toString("utf8")
    const user = decoded.slice(0, Math.max(0, decoded.indexOf(":")))
    try {
      return decodeURIComponent(user.replace(/\+/g, "%20"))
    } catch {
      return user
    }
  }
  const clientId = params.get("client_id")
  if (clientId !== null) return clientId
  const assertion = params.get("client_assertion")
  const payload = assertion?.split(".")[1]
  if (payload !== undefined) {
    try {
      const claims = JSON.parse(Buffer.from(payload, "base64url").toString("utf8")) as Record<string, unknown>
      const sub = claims.sub ?? claims.iss
      return typeof sub === "string" ? sub : undefined
    } catch {
      return undefined
    }
  }
  return undefined
}

const faultBody = (status: number): { error: string; error_description: string } => ({
  error:
    status === 503 || status === 429
      ? "temporarily_unavailable"
      : status >= 500
        ? "server_error"
        : "invalid_request",
  error_description: "fault injected by dev-idp"
})

/** A request whose body was already read, handed on to oidc-provider as if it were unread. */
const replayRequest = (req: IncomingMessage, body: Buffer): IncomingMessage => {
  const replay = new IncomingMessage(req.socket)
  replay.method = req.method ?? "POST"
  replay.url = req.url ?? "/"
  replay.headers = req.headers
  replay.rawHeaders = req.rawHeaders
  replay.httpVersion = req.httpVersion
  replay.httpVersionMajor = req.httpVersionMajor
  replay.httpVersionMinor = req.httpVersionMinor
  replay.complete = true
  replay.push(body)
  replay.push(null)
  return replay
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  value !== null && typeof value === "object"

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
  const store = new Store(options.refreshTokenReuseGraceSeconds, (payload) =>
    reuses.record({
      subject: String(payload.accountId ?? ""),
      clientId: String(payload.clientId ?? ""),
      at: Date.now()
    })
  )
  const extraClaims = new WeakMap<object, Record<string, unknown>>()
  const userBySub = new Map(users.map((user) => [user.sub, user]))
  const counters = new TokenCounters()
  const faults = new Faults()
  const revocations = new Revocations()
  const notes = new NotesApi({ issuer, audience: notesAudience, jwks: publicJwks, basePath: notesApiPath })
  const lifetime = new AbortController()

  const refreshTokenTtl = (age: number): number => {
    const remaining = options.refreshTokenTtlSeconds - age
    const idle = options.refreshTokenIdleSeconds
    return Math.max(1, idle === undefined ? remaining : Math.min(idle, remaining))
  }

  const configuration: Configuration = {
    adapter: (name: string) => store.adapter(name),
    clients: metadata as Configuration["clients"],
    clientBasedCORS: () => false,
    cookies: { keys: [randomBytes(32).toString("base64url")] },
    claims: {
      acr: null,
      sid: null,
      auth_time: null,
      iss: null,
      openid: ["sub"],
      profile: ["name", "preferred_username"],
      email: ["email", "email_verified"]
    },
    scopes: [...OIDC_SCOPES],
    clockTolerance: 5,
    findAccount: (_ctx, sub) => {
      const user = userBySub.get(sub)
      if (user === undefined) return undefined
      return {
        accountId: user.sub,
        claims: () => ({
          sub: user.sub,
          preferred_username: user.username,
          ...(user.name === undefined ? {} : { name: user.name }),
          ...(user.email === undefined ? {} : { email: user.email, email_verified: true })
        })
      }
    },
    jwks: { keys: [signingJwk] } as Configuration["jwks"],
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: {
        enabled: true,
        allowedPolicy: (_ctx, client, token) =>
          client.clientAuthMethod !== "none" || token.clientId === client.clientId
      },
      revocation: {
        enabled: true,
        allowedPolicy: (_ctx, client, token) => {
          if (token.clientId === client.clientId) return true
          if (client.clientAuthMethod === "none") return false
          throw new errors.InvalidRequest("client is not authorized to revoke the presented token")
        }
      },
      registration: { enabled: true, initialAccessToken: false },
      resourceIndicators: {
        enabled: true,
        defaultResource: (_ctx, _client, oneOf) => {
          if (oneOf === undefined) return notesAudience
          return oneOf.includes(notesAudience) ? notesAudience : (oneOf[0] ?? notesAudience)
        },
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx, indicator) => {
          const info = resourceInfo(indicator)
          if (info === undefined) throw new errors.InvalidTarget(`unknown resource ${indicator}`)
          return info
        }
      },
      userinfo: { enabled: true }
    },
    extraTokenClaims: (_ctx, token) => extraClaims.get(token),
    interactions: { url: (_ctx, interaction) => `${INTERACTION_PREFIX}${interaction.uid}` },
    issueRefreshToken: (_ctx, client, code) =>
      client.grantTypeAllowed("refresh_token") && (plain || code.scopes.has("offline_access")),
    pkce: { required: () => true },
    renderError: (ctx, out) => {
      ctx.type = "html"
      ctx.body = errorPage(out as unknown as Record<string, unknown>)
    },
    responseTypes: ["code"],
    rotateRefreshToken: true,
    ttl: {
      AccessToken: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? options.accessTokenTtlSeconds,
      ClientCredentials: (_ctx, token) =>
        token.resourceServer?.accessTokenTTL ?? options.accessTokenTtlSeconds,
      AuthorizationCode: 60,
      IdToken: 3600,
      Interaction: 600,
      Session: 24 * 60 * 60,
      Grant: options.refreshTokenTtlSeconds + 60,
      RefreshToken: (_ctx, token) => refreshTokenTtl(token.totalLifetime())
    }
  }

  const provider = new Provider(issuer, configuration)
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
  provider.use(async (ctx: KoaContextWithOIDC, next) => {
    await next()
    const oidc = ctx.oidc as KoaContextWithOIDC["oidc"] | undefined
    if (oidc === undefined || ctx.status !== 200) return
    if (oidc.route === "token" && isRecord(ctx.body) && typeof ctx.body.refresh_token === "string") {
      const refreshToken = await provider.RefreshToken.find(ctx.body.refresh_token)
      if (refreshToken !== undefined && oidc.params?.grant_type === "refresh_token") {
        rotations.record({
          subject: String(refreshToken.accountId ?? ""),
          clientId: String(refreshToken.clientId ?? ""),
          at: Date.now()
        })
      }
      if (refreshToken?.exp !== undefined) {
        const seconds = Math.max(0, refreshToken.exp - Math.floor(Date.now() / 1000))
        ctx.body = { ...ctx.body, [plain ? "refresh_token_expires_in" : "refresh_expires_in"]: seconds }
      }
    }
    if (plain && oidc.route === "token" && isRecord(ctx.body) && "id_token" in ctx.body) {
      const { id_token: _dropped, ...rest } = ctx.body
      ctx.body = rest
    }
    if (oidc.route === "revocation" && oidc.client !== undefined) {
      const hint = oidc.params?.token_type_hint
      revocations.record({
        clientId: oidc.client.clientId,
        authMethod: String(oidc.client.clientAuthMethod),
        tokenTypeHint: typeof hint === "string" ? hint : undefined,
        at: Date.now()
      })
    }
  })
  const providerCallback = provider.callback()

  const applyFault = async (fault: Fault, res: ServerResponse): Promise<"handled" | "continue"> => {
    switch (fault.kind) {
      case "status":
        sendJson(res, fault.status, faultBody(fault.status))
        return "handled"
      case "bare_status":
        if (fault.body === undefined) {
          res.writeHead(fault.status, { "content-length": "0" })
          res.end()
        } else {
          const body = Buffer.from(fault.body)
          res.writeHead(fault.status, {
            "content-type": fault.contentType,
            "content-length": String(body.length)
          })
          res.end(body)
        }
        return "handled"
      case "rate_limit":
        sendJson(res, 429, faultBody(429), { "retry-after": String(fault.retryAfterSeconds) })
        return "handled"
      case "invalid_grant":
        sendJson(res, 400, { error: "invalid_grant", error_description: "fault injected by dev-idp" })
        return "handled"
      case "latency":
        await sleep(fault.ms, undefined, { signal: lifetime.signal })
        return "continue"
      case "hang":
        // Never answer: the connection stays open until the client gives up or dev-idp closes.
        return "handled"
      case "after_commit":
        return "continue"
    }
  }

  /**
   * Lets the provider answer `res` for real (the rotation commits), then replaces what it would send
   * with the fault's answer. The provider's answer is held at `res.end`, before any byte is sent.
   */
  const answerAfterCommit = (fault: Extract<Fault, { kind: "after_commit" }>, res: ServerResponse) => {
    const end = res.end.bind(res) as (chunk?: unknown) => ServerResponse
    res.end = ((chunk?: unknown) => {
      const text = chunk === undefined || chunk === null ? "" : Buffer.from(chunk as Buffer).toString("utf8")
      const replace = (status: number, body: string) => {
        res.statusCode = status
        res.setHeader("content-type", "application/json; charset=utf-8")
        res.setHeader("content-length", String(Buffer.byteLength(body)))
        return end(body)
      }
      switch (fault.answer) {
        case "status":
          return replace(fault.status, JSON.stringify(faultBody(fault.status)))
        case "json_invalid": {
          let parsed: unknown
          try {
            parsed = JSON.parse(text)
          } catch {
            return end(chunk)
          }
          return isRecord(parsed) && res.statusCode === 200
            ? replace(200, JSON.stringify({ ...parsed, token_type: "x-unknown" }))
            : end(chunk)
        }
        case "non_json":
          return res.statusCode === 200
            ? replace(200, text.slice(0, Math.max(1, text.length >> 1)))
            : end(chunk)
        case "drop":
          res.destroy()
          return res
      }
    }) as typeof res.end
  }

  const handleToken = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const body = await readBody(req)
    const params = new URLSearchParams(body.toString("utf8"))
    const grantType = params.get("grant_type") ?? undefined
    const clientId = clientIdOf(req.headers.authorization, params)
    counters.record(grantType, clientId)
    const fault = faults.take({ grantType, clientId })
    if (fault !== undefined && (await applyFault(fault, res)) === "handled") return
    if (res.destroyed) return
    if (fault?.kind === "after_commit") answerAfterCommit(fault, res)
    if (plain) answerErrorsWith200(res)
    providerCallback(replayRequest(req, body), res)
  }

  /** GitHub-style: an OAuth error answer of the token endpoint goes out with status 200, same JSON body. */
  const answerErrorsWith200 = (res: ServerResponse) => {
    const end = res.end.bind(res) as (chunk?: unknown) => ServerResponse
    res.end = ((chunk?: unknown) => {
      if (res.statusCode >= 400 && res.statusCode < 500 && chunk !== undefined && chunk !== null) {
        try {
          const parsed: unknown = JSON.parse(Buffer.from(chunk as Buffer).toString("utf8"))
          if (isRecord(parsed) && typeof parsed.error === "string") {
            res.statusCode = 200
            res.removeHeader("www-authenticate")
          }
        } catch {
          // not JSON: passed on as it is
        }
      }
      return end(chunk)
    }) as typeof res.end
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

  /**
   * Dynamic registration (RFC 7591). MCP clients register with the resource scopes they will ask for
   * (`scope: "mcp:tools notes:read"`); oidc-provider only knows its OpenID scopes at registration (a
   * client's `scope` gates only those) and would refuse the client. Resource scopes are dropped from
   * the metadata: which of them a token gets is decided per resource at authorization.
   */
  const handleRegistration = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const body = await readBody(req)
    let metadata: unknown
    try {
      metadata = JSON.parse(body.toString("utf8"))
    } catch {
      return providerCallback(replayRequest(req, body), res)
    }
    if (!isRecord(metadata) || typeof metadata.scope !== "string") {
      return providerCallback(replayRequest(req, body), res)
    }
    const { scope, ...rest } = metadata
    const kept = scope.split(" ").filter((value) => OIDC_SCOPES.includes(value))
    const rewritten = Buffer.from(JSON.stringify(kept.length > 0 ? { ...rest, scope: kept.join(" ") } : rest))
    const replay = replayRequest(req, rewritten)
    replay.headers = { ...req.headers, "content-length": String(rewritten.length) }
    providerCallback(replay, res)
  }

  let idp: DevIdp
  const control = { get: () => idp }

  const route = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = new URL(req.url ?? "/", issuer).pathname
    if (path === notesApiPath || path.startsWith(`${notesApiPath}/`)) return notes.handle(req, res, path)
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
    if (req.method === "POST" && path === "/reg") return handleRegistration(req, res)
    providerCallback(req, res)
  }

  handler = (req, res) => {
    route(req, res).catch((error: unknown) => {
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
