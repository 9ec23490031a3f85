import { createServer, type IncomingMessage, request, type ServerResponse } from "node:http"
import type { AddressInfo, Socket } from "node:net"

/**
 * A small HTTP proxy in front of dev-idp, reached by brokers through core's public-to-internal rewrite
 * (`ProviderConfig.internalBaseUrl: { from: issuer, to: proxy.url }`), so that every request a broker
 * sends to the provider passes here while tokens still name dev-idp's issuer. It does two things dev-idp
 * itself cannot:
 * - counts refresh requests in flight at the token endpoint (the current number and the peak), the
 *   figure that shows a broker keeps to its cap on concurrent refreshes;
 * - takes the provider "down": while down, every request is refused by closing its connection before a
 *   byte reaches dev-idp (so dev-idp never processes, and never rotates, anything it was sent).
 */
export interface UpstreamProxy {
  readonly url: string
  /** Refresh requests forwarded to dev-idp and not yet answered. */
  readonly inFlight: () => number
  /** The highest `inFlight` since the last `resetPeak`. */
  readonly peak: () => number
  readonly resetPeak: () => void
  /** Refresh requests forwarded since start. */
  readonly forwarded: () => number
  /** Requests refused while down. */
  readonly refused: () => number
  readonly setDown: (down: boolean) => void
  readonly close: () => Promise<void>
}

const isRefresh = (req: IncomingMessage, body: Buffer) =>
  req.method === "POST" &&
  (req.url ?? "").startsWith("/token") &&
  new URLSearchParams(body.toString("utf8")).get("grant_type") === "refresh_token"

export const startUpstreamProxy = async (target: string): Promise<UpstreamProxy> => {
  const upstream = new URL(target)
  let inFlight = 0
  let peak = 0
  let forwarded = 0
  let refused = 0
  let down = false
  const sockets = new Set<Socket>()

  const forward = (req: IncomingMessage, res: ServerResponse, body: Buffer, refresh: boolean) => {
    if (refresh) {
      inFlight += 1
      forwarded += 1
      peak = Math.max(peak, inFlight)
    }
    let settled = false
    const settle = () => {
      if (settled) return
      settled = true
      if (refresh) inFlight -= 1
    }
    const out = request(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, host: upstream.host, "content-length": String(body.length) }
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers)
        answer.pipe(res)
        answer.on("end", settle)
        answer.on("error", settle)
      }
    )
    out.on("error", () => {
      settle()
      res.destroy()
    })
    res.on("close", settle)
    out.end(body)
  }

  const server = createServer((req, res) => {
    const chunks: Array<Buffer> = []
    req.on("data", (chunk: Buffer) => chunks.push(chunk))
    req.on("end", () => {
      if (down) {
        refused += 1
        req.socket.destroy()
        return
      }
      const body = Buffer.concat(chunks)
      forward(req, res, body, isRefresh(req, body))
    })
  })
  server.keepAliveTimeout = 60_000
  server.on("connection", (socket) => {
    sockets.add(socket)
    socket.on("close", () => sockets.delete(socket))
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    inFlight: () => inFlight,
    peak: () => peak,
    resetPeak: () => {
      peak = inFlight
    },
    forwarded: () => forwarded,
    refused: () => refused,
    setDown: (value) => {
      down = value
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy()
        server.close(() => resolve())
      })
  }
}
