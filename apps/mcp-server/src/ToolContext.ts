import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js"
import type { RequestHandlerExtra } from "@modelcontextprotocol/sdk/shared/protocol.js"
import type { CallToolResult, ServerNotification, ServerRequest } from "@modelcontextprotocol/sdk/types.js"
import type { ProviderConfig, TokenSource } from "@token-broker/core"
import type { Effect, Exit } from "effect"
import type { NotesApi } from "./internal/notesApi.js"

/** Runs an effect in the server's one runtime. */
export type Run = <A, E>(effect: Effect.Effect<A, E>) => Promise<Exit.Exit<A, E>>

/** What every tool of one MCP session works with. */
export interface ToolContext {
  readonly server: McpServer
  readonly providers: ReadonlyArray<ProviderConfig>
  /** Providers whose tokens are RFC 8693 session tokens (exchanged from the caller's token); others: background. */
  readonly exchangeProviders: ReadonlySet<string>
  readonly tokenSource: TokenSource.TokenSourceService
  readonly run: Run
  /** Starts a fiber that lives as long as the MCP session (it is interrupted when the session ends). */
  readonly background: (effect: Effect.Effect<void>) => void
  readonly notes:
    | {
        readonly provider: string
        readonly api: NotesApi
        readonly readScopes: ReadonlyArray<string>
        readonly writeScopes: ReadonlyArray<string>
      }
    | undefined
}

export type ToolExtra = RequestHandlerExtra<ServerRequest, ServerNotification>

/** The verified caller of a tool call (set by the bearer check on every HTTP request). */
export interface Caller {
  readonly subject: string
  /** The client's own access token: only ever sent to the broker for an RFC 8693 exchange, never upstream. */
  readonly token: string
  readonly scopes: ReadonlyArray<string>
}

export const callerOf = (extra: ToolExtra): Caller => {
  const auth = extra.authInfo
  const subject = auth?.extra?.subject
  if (auth === undefined || typeof subject !== "string") {
    // The bearer check runs before every request reaches a session: this is a bug, not a user error.
    throw new Error("tool called without a verified caller")
  }
  return { subject, token: auth.token, scopes: auth.scopes }
}

export type ToolResult = CallToolResult

export const textResult = (text: string, structured?: Record<string, unknown>): ToolResult => ({
  content: [{ type: "text", text }],
  ...(structured === undefined ? {} : { structuredContent: structured })
})

export const errorResult = (text: string, structured?: Record<string, unknown>): ToolResult => ({
  ...textResult(text, structured),
  isError: true
})
