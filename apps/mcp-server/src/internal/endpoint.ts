import type { FastifyReply } from "fastify"

// The MCP endpoint's path and its RFC 9728 metadata path, and the JSON-RPC error answer of both the
// front door and the endpoint.

/** The path of the MCP endpoint; `${publicUrl}${MCP_PATH}` is this server's resource identifier (token audience). */
export const MCP_PATH = "/mcp"
/** RFC 9728: the metadata of the resource `${publicUrl}/mcp` lives at this path (path-suffixed well-known URI). */
export const RESOURCE_METADATA_PATH = `/.well-known/oauth-protected-resource${MCP_PATH}`

/** Whether a request's URL (its path, before any query) is the MCP endpoint. */
export const isMcpPath = (url: string): boolean =>
  url.startsWith(MCP_PATH) && (url.length === MCP_PATH.length || url.charCodeAt(MCP_PATH.length) === 63) // "?"

export const jsonRpcError = (reply: FastifyReply, status: number, code: number, message: string) =>
  reply.code(status).type("application/json").send({ jsonrpc: "2.0", error: { code, message }, id: null })
