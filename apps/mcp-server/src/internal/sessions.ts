import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js"
import type { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js"

/** One MCP session: its transport and server, bound to the subject that opened it. */
export interface Session {
  readonly transport: StreamableHTTPServerTransport
  readonly server: McpServer
  readonly subject: string
  lastSeen: number
  /** Releases what the session started (watchers of pending consents). */
  readonly release: () => Promise<void>
}

/**
 * The open sessions of this process. A session is usable only by the subject that opened it; idle
 * sessions are closed after `idleMs`, and at most `max` are open (the oldest idle one goes first).
 */
export const makeSessions = (options: { readonly idleMs: number; readonly max: number }) => {
  const sessions = new Map<string, Session>()

  const close = async (id: string): Promise<void> => {
    const session = sessions.get(id)
    if (session === undefined) return
    sessions.delete(id)
    await session.release()
    await session.transport.close().catch(() => undefined)
    await session.server.close().catch(() => undefined)
  }

  const sweep = () => {
    const now = Date.now()
    for (const [id, session] of sessions) {
      if (now - session.lastSeen > options.idleMs) void close(id)
    }
  }
  const timer = setInterval(sweep, Math.min(60_000, options.idleMs))
  timer.unref()

  return {
    get: (id: string): Session | undefined => sessions.get(id),
    add: (id: string, session: Session): void => {
      if (sessions.size >= options.max) {
        const oldest = [...sessions.entries()].sort((a, b) => a[1].lastSeen - b[1].lastSeen)[0]
        if (oldest !== undefined) void close(oldest[0])
      }
      sessions.set(id, session)
    },
    forget: (id: string): void => {
      sessions.delete(id)
    },
    close,
    closeAll: async (): Promise<void> => {
      clearInterval(timer)
      await Promise.all([...sessions.keys()].map(close))
    },
    size: (): number => sessions.size
  }
}

export type Sessions = ReturnType<typeof makeSessions>
