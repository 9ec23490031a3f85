import { randomUUID } from "node:crypto"
import type { IncomingMessage } from "node:http"
import type { AuthInfo } from "@modelcontextprotocol/sdk/server/auth/types.js"
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js"
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js"
import { isInitializeRequest } from "@modelcontextprotocol/sdk/types.js"
import { httpServerOptions, type McpServerConfig } from "@token-broker/config"
import {
  type ProviderConfig,
  Scopes,
  type TokenBroker,
  type TokenSource,
  type TokenVerifier
} from "@token-broker/core"
import { RequestLogger } from "@token-broker/server-kit"
import { Cause, Effect, Exit, Option, Redacted, Scope } from "effect"
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify"
import type { Logger as PinoLogger } from "pino"
import { bearerToken, challenge, scopesNeeded, stepUpScopes } from "./internal/bearer.js"
import { registerConsentCallback } from "./internal/consentCallback.js"
import { isMcpPath, jsonRpcError, MCP_PATH, RESOURCE_METADATA_PATH } from "./internal/endpoint.js"
import { registerFrontDoor } from "./internal/frontDoor.js"
import { makeNotesApi } from "./internal/notesApi.js"
import { makeSessions, type Session } from "./internal/sessions.js"
import { makeWindowCounter } from "./internal/windowCounter.js"
import { makeScopePolicy } from "./Scopes.js"
import type { Run, ToolContext } from "./ToolContext.js"
import { registerConnectionTools } from "./tools/connection.js"
import { registerNotesTools } from "./tools/notes.js"

export { MCP_PATH, RESOURCE_METADATA_PATH } from "./internal/endpoint.js"

export interface McpServerServices {
  readonly config: McpServerConfig
  readonly providers: ReadonlyArray<ProviderConfig>
  readonly tokenSource: TokenSource.TokenSourceService
  /** Verifies MCP clients' tokens (issuer: `config.authorizationServer`). */
  readonly verifier: TokenVerifier.TokenVerifierService
  /** With the in-process token source: finishes consent on this server's `/connect/callback`. */
  readonly completeAuthorization?: TokenBroker.TokenBrokerService["completeAuthorization"] | undefined
  /** Runs an effect in the server's one runtime. */
  readonly run: Run
  readonly logger: FastifyInstance["log"] | undefined
}

export interface BuiltServer {
  readonly app: FastifyInstance
  /** Closes every MCP session (call before `app.close()`). */
  readonly closeSessions: () => Promise<void>
}

const SERVER_INFO = { name: "token-broker", title: "token-broker MCP server", version: "0.0.0" }

const INSTRUCTIONS = `This server acts for you at upstream services (providers) with tokens from a token broker.
Call connection_status to see which providers are connected. A tool that needs a provider you have not
connected answers "Consent required" with a link: show the link to the user, who opens it in a browser,
signs in at the provider and allows access; then retry. connect_provider starts that consent directly;
disconnect_provider revokes it.`

/** A request's verified bearer token. */
interface Bearer {
  readonly token: string
  readonly verified: TokenVerifier.VerifiedToken
}

/**
 * Builds the MCP server on fastify (not listening yet: tests listen on port 0): a protected resource
 * (RFC 9728 metadata, bearer tokens whose audience is this server, 401/403 challenges), stateful
 * Streamable HTTP sessions bound to the subject that opened them, the tools, and - with the in-process
 * token source - the consent callback.
 */
export const buildServer = async (services: McpServerServices): Promise<BuiltServer> => {
  const { config, verifier, run } = services
  const resource = `${config.publicUrl}${MCP_PATH}`
  const resourceMetadata = `${config.publicUrl}${RESOURCE_METADATA_PATH}`
  const scopes = makeScopePolicy(config.clientScopes)
  const sessions = makeSessions({
    idleMs: config.sessions.idleTimeoutMs,
    max: config.sessions.max,
    maxPerSubject: config.sessions.maxPerSubject
  })
  const createdBySubject = makeWindowCounter({
    max: config.sessions.createLimit.perSubject,
    windowMs: config.sessions.createLimit.timeWindowMs
  })
  const createdByAddress = makeWindowCounter({
    max: config.sessions.createLimit.perAddress,
    windowMs: config.sessions.createLimit.timeWindowMs
  })
  const notes =
    config.notes === undefined
      ? undefined
      : {
          provider: config.notes.provider,
          api: makeNotesApi({ baseUrl: config.notes.apiUrl }),
          readScopes: config.notes.readScopes,
          writeScopes: config.notes.writeScopes
        }

  const { maxConnections, ...limits } = httpServerOptions(config.connections)
  const app = Fastify({
    ...limits,
    ...(services.logger === undefined
      ? { logger: false }
      : {
          loggerInstance: services.logger,
          // a request's pino child is made only when it writes a line (most requests write none)
          childLoggerFactory: (parent, bindings, options) =>
            RequestLogger.lazyChildLogger(parent as unknown as PinoLogger, bindings, options)
        }),
    bodyLimit: 4 * 1024 * 1024,
    // fastify accepts a hop count too; its types name only boolean, string and functions
    trustProxy: config.trustProxy as boolean | string,
    forceCloseConnections: true,
    return503OnClosing: true,
    requestIdHeader: false,
    genReqId: () => randomUUID()
  }) as unknown as FastifyInstance
  app.server.maxConnections = maxConnections

  registerFrontDoor(app, { config, resource, scopesSupported: scopes.supported })

  // --- the bearer check ------------------------------------------------------------------------------
  const unauthorized = (
    reply: FastifyReply,
    error?: "invalid_token" | "invalid_request",
    description?: string
  ) =>
    reply
      .code(error === "invalid_request" ? 400 : 401)
      .header(
        "www-authenticate",
        challenge({ resourceMetadata, scopes: scopes.supported, error, description })
      )
      .header("cache-control", "no-store")
      .send({
        error: error ?? "unauthorized",
        error_description:
          description ?? "This MCP server needs a bearer token: sign in at its authorization server"
      })

  /** Why a verified token may not use this server: a client's own (client_credentials) token. */
  const clientTokenRefused = (verified: TokenVerifier.VerifiedToken): boolean =>
    // client_credentials tokens name the client as their subject: a client is not a user of this server
    !config.allowClientTokens && verified.clientId !== undefined && verified.subject === verified.clientId

  /** The bearer token, verified before the body is read (an anonymous request never gets it parsed). */
  const verifyBearer = async (
    request: FastifyRequest,
    reply: FastifyReply,
    header: string | undefined,
    token: string | undefined
  ): Promise<Bearer | undefined> => {
    if (token === undefined) {
      if (header !== undefined && /^Bearer\b/i.test(header)) {
        await unauthorized(reply, "invalid_token", "The bearer token is malformed")
      } else {
        await unauthorized(reply)
      }
      return undefined
    }
    const exit = await run(verifier.verify(Redacted.make(token), { audience: resource }))
    if (Exit.isFailure(exit)) {
      const failure = Cause.failureOption(exit.cause)
      const description = Option.isSome(failure)
        ? failure.value._tag === "AudienceMismatch"
          ? `The token is not for this resource (${resource})`
          : failure.value.message
        : "The token could not be verified"
      request.log.info(
        { reason: Option.isSome(failure) ? failure.value._tag : "defect" },
        "bearer token refused"
      )
      await unauthorized(reply, "invalid_token", description)
      return undefined
    }
    const verified = exit.value
    if (clientTokenRefused(verified)) {
      request.log.info({ reason: "client_token" }, "bearer token refused")
      await unauthorized(
        reply,
        "invalid_token",
        "The token was issued to a client, not a user: sign in as a user (see mcpServer.allowClientTokens)"
      )
      return undefined
    }
    return { token, verified }
  }
  const bearers = new WeakMap<FastifyRequest, Bearer>()
  app.addHook("onRequest", (request, reply, done) => {
    if (!isMcpPath(request.url) || reply.sent) return done()
    const header = request.headers.authorization
    const token = bearerToken(header)
    // A token this verifier verified (signature, issuer, audience, expiry) and remembers - keyed by the
    // token's own digest, never past its `exp` by the clock - is taken synchronously; any other goes
    // through `verify`, which also names what is wrong with it.
    const remembered =
      token === undefined ? undefined : verifier.remembered?.(Redacted.make(token), { audience: resource })
    if (token !== undefined && remembered !== undefined && !clientTokenRefused(remembered)) {
      bearers.set(request, { token, verified: remembered })
      return done()
    }
    verifyBearer(request, reply, header, token).then((bearer) => {
      // refused: the 401 is sent, and fastify goes on with no `done()`
      if (bearer === undefined) return
      bearers.set(request, bearer)
      done()
    }, done)
  })

  /** The scopes this request needs (a tool's own for tools/call) against the verified token. */
  const authorize = async (request: FastifyRequest, reply: FastifyReply): Promise<AuthInfo | undefined> => {
    const bearer = bearers.get(request)
    if (bearer === undefined) {
      await unauthorized(reply)
      return undefined
    }
    const { token, verified } = bearer
    const needed = scopesNeeded(scopes, request.method === "POST" ? request.body : undefined)
    const missing = needed.filter((scope) => !verified.scopes.includes(scope))
    if (missing.length > 0) {
      await reply
        .code(403)
        .header(
          "www-authenticate",
          challenge({
            resourceMetadata,
            scopes: stepUpScopes(scopes, verified.scopes, needed),
            error: "insufficient_scope",
            description: `This request needs the scope ${Scopes.join(missing)}`
          })
        )
        .send({
          error: "insufficient_scope",
          error_description: `This request needs the scope ${Scopes.join(missing)}`
        })
      return undefined
    }
    return authInfoOf(token, verified)
  }
  /**
   * What the SDK hands the tools: made once per verification (a remembered one comes back as the same
   * object), for that verification's own token only, and frozen, since requests share it.
   */
  const authInfos = new WeakMap<TokenVerifier.VerifiedToken, AuthInfo>()
  const authInfoOf = (token: string, verified: TokenVerifier.VerifiedToken): AuthInfo => {
    const known = authInfos.get(verified)
    if (known !== undefined && known.token === token) return known
    const made: AuthInfo = Object.freeze({
      token,
      clientId: verified.clientId ?? "",
      scopes: Object.freeze([...verified.scopes]) as Array<string>,
      expiresAt: Math.floor(verified.expiresAt / 1000),
      resource: new URL(resource),
      extra: Object.freeze({ subject: verified.subject, issuer: verified.issuer })
    })
    authInfos.set(verified, made)
    return made
  }

  // --- MCP sessions ----------------------------------------------------------------------------------
  const openSession = async (subject: string): Promise<StreamableHTTPServerTransport> => {
    const server = new McpServer(SERVER_INFO, { capabilities: { tools: {} }, instructions: INSTRUCTIONS })
    const scope = await Effect.runPromise(Scope.make())
    const context: ToolContext = {
      server,
      providers: services.providers,
      exchangeProviders: new Set(config.exchangeProviders),
      tokenSource: services.tokenSource,
      run,
      background: (effect) => {
        void run(Effect.forkIn(effect, scope))
      },
      notes
    }
    registerConnectionTools(context)
    registerNotesTools(context)
    const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (id) => {
        const session: Session = {
          transport,
          server,
          subject,
          lastSeen: Date.now(),
          release: () => run(Scope.close(scope, Exit.void)).then(() => undefined)
        }
        sessions.add(id, session)
      },
      onsessionclosed: (id) => {
        void sessions.close(id)
      }
    })
    transport.onclose = () => {
      const id = transport.sessionId
      if (id !== undefined) sessions.forget(id)
      void run(Scope.close(scope, Exit.void))
    }
    await server.connect(transport)
    return transport
  }

  const handleMcp = async (request: FastifyRequest, reply: FastifyReply) => {
    const auth = await authorize(request, reply)
    if (auth === undefined) return reply
    const subject = auth.extra?.subject as string
    const sessionHeader = request.headers["mcp-session-id"]
    const sessionId = typeof sessionHeader === "string" ? sessionHeader : undefined
    let transport: StreamableHTTPServerTransport
    if (sessionId !== undefined) {
      const session = sessions.get(sessionId)
      // Another subject's session is as unknown as a closed one: nothing tells that it exists.
      if (session === undefined || session.subject !== subject) {
        return jsonRpcError(reply, 404, -32001, "Session not found: start a new session (initialize)")
      }
      session.lastSeen = Date.now()
      transport = session.transport
    } else if (request.method === "POST" && isInitializeRequest(request.body)) {
      const now = Date.now()
      const byAddress = createdByAddress.take(request.ip, now)
      const bySubject = byAddress.ok ? createdBySubject.take(subject, now) : byAddress
      if (!bySubject.ok) {
        request.log.info({ by: byAddress.ok ? "subject" : "address" }, "session creation limited")
        void reply.header("retry-after", String(Math.max(1, Math.ceil(bySubject.retryAfterMs / 1000))))
        return jsonRpcError(reply, 429, -32000, "Too many new sessions: reuse your session, or retry later")
      }
      transport = await openSession(subject)
    } else {
      return jsonRpcError(
        reply,
        400,
        -32000,
        "Bad Request: send initialize first, then the Mcp-Session-Id it returned"
      )
    }
    reply.hijack()
    const raw = request.raw as IncomingMessage & { auth?: AuthInfo }
    raw.auth = auth
    await transport.handleRequest(raw, reply.raw, request.body)
    return reply
  }
  // A body that is not JSON is a JSON-RPC parse error, not fastify's error body.
  app.setErrorHandler((error: { code?: string; statusCode?: number; message?: string }, request, reply) => {
    if (isMcpPath(request.url)) {
      if (error.code === "FST_ERR_CTP_INVALID_JSON_BODY" || error.code === "FST_ERR_CTP_EMPTY_JSON_BODY") {
        return jsonRpcError(reply, 400, -32700, "Parse error: the body is not valid JSON")
      }
      if (error.code === "FST_ERR_CTP_BODY_TOO_LARGE") {
        return jsonRpcError(reply, 413, -32600, "Invalid Request: the body is too large")
      }
    }
    const status = typeof error.statusCode === "number" && error.statusCode >= 400 ? error.statusCode : 500
    if (status >= 500)
      request.log.error({ err: { message: error.message, code: error.code } }, "request failed")
    return reply.code(status).send({
      error: status >= 500 ? "server_error" : "invalid_request",
      message: status >= 500 ? "Internal error" : String(error.message ?? "").slice(0, 200)
    })
  })
  app.post(MCP_PATH, handleMcp)
  app.get(MCP_PATH, handleMcp)
  app.delete(MCP_PATH, handleMcp)

  // --- the consent callback (in-process token source) ------------------------------------------------
  if (services.completeAuthorization !== undefined) {
    registerConsentCallback(app, services.completeAuthorization, run)
  }

  app.addHook("onClose", async () => {
    await notes?.api.close()
  })

  app.get("/healthz", async () => ({ status: "ok", sessions: sessions.size() }))

  return { app, closeSessions: () => sessions.closeAll() }
}
