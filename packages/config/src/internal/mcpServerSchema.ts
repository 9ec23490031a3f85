import { z } from "zod"
import { connectionsSchema, mcpConnections } from "./connectionsSchema.js"
import { DURATION, Duration } from "./duration.js"
import { listenerFields, logLevel, scope, trustProxy, url } from "./fieldSchemas.js"

/**
 * The `mcpServer` section: settings of the MCP server app only (the broker ignores it). Plain data, as
 * the rest of the file schema, so that the JSON Schema for editors describes it.
 */

export const McpServerSchema = z
  .strictObject({
    ...listenerFields(
      8090,
      "where MCP clients reach this server, without the /mcp path, e.g. https://mcp.example.com",
      "Default: http://<host>:<port>. The MCP endpoint (and token audience) is <publicUrl>/mcp"
    ),
    authorizationServer: z
      .strictObject({
        issuer: url("the issuer of MCP clients' tokens, e.g. https://cloud.example.com"),
        jwksUri: url("the issuer's JWKS").optional().describe("Default: discovered from the issuer"),
        allowInsecureRequests: z
          .boolean()
          .default(false)
          .describe("Allow an http:// issuer: local development and tests only"),
        clockTolerance: z
          .union([z.number().nonnegative(), z.string().regex(DURATION)])
          .optional()
          .describe('Leeway on exp/nbf: milliseconds or "<number> <unit>" (default 30 seconds)')
      })
      .describe(
        "Where MCP clients sign in (advertised in the RFC 9728 metadata); tokens must name <publicUrl>/mcp as audience"
      ),
    notes: z
      .strictObject({
        provider: z.string().min(1).describe("The provider whose grant the notes tools use"),
        apiUrl: url("the notes API v1 base, e.g. https://cloud.example.com/index.php/apps/notes/api/v1"),
        readScopes: z.array(scope).default(["notes:read"]).describe("Upstream scopes of the reading tools"),
        writeScopes: z.array(scope).default(["notes:write"]).describe("Upstream scopes of the writing tools"),
        allowInsecureRequests: z
          .boolean()
          .default(false)
          .describe("Allow an http:// apiUrl: local development only")
      })
      .optional()
      .describe("The notes tools (Nextcloud Notes API v1); absent: no notes tools"),
    clientScopes: z
      .strictObject({
        tools: z.array(scope).default(["mcp:tools"]).describe("Every request"),
        notesRead: z.array(scope).default(["notes:read"]).describe("notes_list, notes_get"),
        notesWrite: z
          .array(scope)
          .default(["notes:write"])
          .describe("notes_create, notes_update, notes_delete")
      })
      .default({ tools: ["mcp:tools"], notesRead: ["notes:read"], notesWrite: ["notes:write"] })
      .describe(
        "Scopes MCP clients' tokens must carry (this server's scopes at its authorization server); [] where the authorization server has none"
      ),
    exchangeProviders: z
      .array(z.string().min(1))
      .default([])
      .describe(
        "Providers whose tokens are RFC 8693 session tokens exchanged from the MCP client's token (each needs tokenExchange); the others use background tokens from stored grants"
      ),
    allowedHosts: z
      .array(
        z.string().regex(/^[A-Za-z0-9.-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$/, {
          message: "a host is a name or address with an optional :port, e.g. mcp.example.com or 10.0.0.5:8090"
        })
      )
      .default([])
      .describe(
        "Host headers accepted at /mcp besides publicUrl's host (DNS-rebinding protection); loopback names at any port are accepted when publicUrl is loopback"
      ),
    allowedOrigins: z
      .array(url("an origin such as https://app.example.com"))
      .default([])
      .describe(
        "Origin headers accepted at /mcp besides publicUrl's origin (browser-based MCP clients); requests without Origin are accepted"
      ),
    allowClientTokens: z
      .boolean()
      .default(false)
      .describe(
        "Accept tokens issued to a client itself (client_credentials: sub is the client id) as users; off: 401"
      ),
    trustProxy: trustProxy.describe(
      "fastify's trustProxy (true, hop count, or the load balancer's addresses): client addresses for limits"
    ),
    connections: connectionsSchema(mcpConnections),
    sessions: z
      .strictObject({
        max: z
          .number()
          .int()
          .min(1)
          .default(1000)
          .describe("Open MCP sessions; beyond: the least recently used closes"),
        maxPerSubject: z
          .number()
          .int()
          .min(1)
          .default(10)
          .describe("Open MCP sessions per user; beyond: that user's own least recently used closes"),
        idleTimeout: Duration.default("30 minutes").describe("An unused session closes after this"),
        createLimit: z
          .strictObject({
            perSubject: z.number().int().min(1).default(30).describe("New sessions per user per window"),
            perAddress: z
              .number()
              .int()
              .min(1)
              .default(120)
              .describe("New sessions per client address per window"),
            timeWindow: Duration.default("1 minute")
          })
          .default({ perSubject: 30, perAddress: 120, timeWindow: "1 minute" })
          .describe("New sessions (initialize) per user and per client address per window; beyond: 429")
      })
      .default({
        max: 1000,
        maxPerSubject: 10,
        idleTimeout: "30 minutes",
        createLimit: { perSubject: 30, perAddress: 120, timeWindow: "1 minute" }
      })
      .describe("MCP sessions of this process"),
    logLevel
  })
  .describe("The MCP server app: where it listens, where its users sign in, its upstream tools")

export type McpServerFile = z.output<typeof McpServerSchema>
