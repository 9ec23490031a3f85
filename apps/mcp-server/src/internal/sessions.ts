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
 * sessions are closed after `idleMs`. A subject has at most `maxPerSubject` open (its own least recently
 * used goes first, so one user cannot push out the others), and at most `max` are open in all.
 */
export const makeSessions = (options: {
  readonly idleMs: number
  readonly max: number
  readonly maxPerSubject: number
}) => {
  const sessions = new Map<string, Session>()

  const close = async (id: string): Promise<void> => {
    const session = sessions.get(id)
    if (session === undefined) return
    sessions.delete(id)
    await session.release()
    await session.transport.close().catch(() => undefined)
    await session.server.close().catch(() => undefined)
  }

  const leastRecentlyUsed = (entries: ReadonlyArray<readonly [string, Session]>): string | undefined =>
    entries.reduce<readonly [string, Session] | undefined>(
      (oldest, entry) => (oldest === undefined || entry[1].lastSeen < oldest[1].lastSeen ? entry : oldest),
      undefined
    )?.[0]

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
      const own = [...sessions.entries()].filter(([, open]) => open.subject === session.subject)
      if (own.length >= options.maxPerSubject) {
        const oldest = leastRecentlyUsed(own)
        if (oldest !== undefined) void close(oldest)
      } else if (sessions.size >= options.max) {
        const oldest = leastRecentlyUsed([...sessions.entries()])
        if (oldest !== undefined) void close(oldest)
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
