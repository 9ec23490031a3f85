import type { McpServerConfig } from "@token-broker/config"
import type { FastifyInstance } from "fastify"
import { isMcpPath, jsonRpcError, RESOURCE_METADATA_PATH } from "./endpoint.js"
import { makeRequestOriginCheck } from "./origins.js"

/**
 * What a request meets before the bearer check: DNS-rebinding protection of the MCP endpoint (Host and
 * Origin checked before the body is read, CORS for an allowed browser origin) and the RFC 9728 protected
 * resource metadata.
 */
export const registerFrontDoor = (
  app: FastifyInstance,
  options: {
    readonly config: McpServerConfig
    /** This server's resource identifier (`${publicUrl}/mcp`). */
    readonly resource: string
    readonly scopesSupported: ReadonlyArray<string>
  }
): void => {
  const { config, resource, scopesSupported } = options
  // --- DNS-rebinding protection: before the bearer check and before the body is read ------------------
  const originCheck = makeRequestOriginCheck(config)
  // callback hooks, not async ones: a request that passes skips a promise and a microtask per hook
  app.addHook("onRequest", (request, reply, done) => {
    if (!isMcpPath(request.url)) return done()
    const origin = request.headers.origin
    const refusal = originCheck.refusal(request.headers.host, origin)
    if (refusal === undefined) {
      if (origin === undefined) return done()
      // An allowed browser origin: CORS, on the raw response so hijacked (SSE) answers carry it too.
      reply.raw.setHeader("access-control-allow-origin", origin)
      reply.raw.setHeader("vary", "Origin")
      reply.raw.setHeader("access-control-expose-headers", "Mcp-Session-Id, WWW-Authenticate")
      if (request.method !== "OPTIONS") return done()
      // replied: fastify goes on with no `done()`
      void reply
        .code(204)
        .header("access-control-allow-methods", "POST, GET, DELETE")
        .header(
          "access-control-allow-headers",
          "Authorization, Content-Type, Accept, Mcp-Session-Id, Mcp-Protocol-Version, Last-Event-ID"
        )
        .header("access-control-max-age", "600")
        .send()
      return
    }
    request.log.info({ refused: refusal }, "request refused: DNS-rebinding protection")
    void jsonRpcError(
      reply,
      403,
      -32000,
      refusal === "host"
        ? "Forbidden: this Host is not served here (see mcpServer.allowedHosts)"
        : "Forbidden: this Origin is not allowed (see mcpServer.allowedOrigins)"
    )
  })

  // --- RFC 9728 protected resource metadata ---------------------------------------------------------
  const metadataDocument = {
    resource,
    authorization_servers: [config.authorizationServer.issuer],
    ...(scopesSupported.length === 0 ? {} : { scopes_supported: scopesSupported }),
    bearer_methods_supported: ["header"],
    resource_name: "token-broker MCP server"
  }
  for (const path of [RESOURCE_METADATA_PATH, "/.well-known/oauth-protected-resource"]) {
    app.get(path, async (_request, reply) =>
      reply
        .header("cache-control", "public, max-age=300")
        .header("access-control-allow-origin", "*")
        .send(metadataDocument)
    )
  }
}
