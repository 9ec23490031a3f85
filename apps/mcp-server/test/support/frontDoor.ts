import { createServer, request } from "node:http"
import type { AddressInfo } from "node:net"

/**
 * A load balancer in front of a server: it binds port 0 in this process, so its URL - the server's
 * `publicUrl`, registered at dev-idp and named in redirect URIs - is known before the server starts;
 * the server then binds port 0 too, and `forwardTo` names its bound address. Requests and answers
 * (Server-Sent Events too) are streamed through unchanged, `Host` included, as a reverse proxy does.
 */
export interface FrontDoor {
  /** e.g. `http://127.0.0.1:41234` */
  readonly url: string
  readonly forwardTo: (target: string) => void
  readonly close: () => Promise<void>
}

export const startFrontDoor = async (): Promise<FrontDoor> => {
  let target: URL | undefined
  const server = createServer((req, res) => {
    if (target === undefined) {
      res.writeHead(503, { "content-type": "text/plain" }).end("the front door has no server behind it yet")
      return
    }
    const upstream = request(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers)
        answer.pipe(res)
      }
    )
    upstream.on("error", () => {
      if (!res.headersSent) res.writeHead(502)
      res.end()
    })
    // the client went away (e.g. closed its event stream): so does the request to the server
    res.on("close", () => upstream.destroy())
    req.pipe(upstream)
  })
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject)
    server.listen(0, "127.0.0.1", resolve)
  })
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    forwardTo: (to) => {
      target = new URL(to)
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      })
  }
}
