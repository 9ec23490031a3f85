import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse
} from "node:http"
import { createServer as createHttpsServer } from "node:https"
import type { AddressInfo, Socket } from "node:net"

/**
 * The emulator's HTTP(S) listener, which can stop and listen again on the same port (a Vault restart):
 * stopping ends every open connection and every request a `hang` fault holds.
 */
export const makeListener = (
  onRequest: (req: IncomingMessage, res: ServerResponse) => void,
  options: {
    readonly host?: string | undefined
    readonly tls?: { readonly key: string; readonly cert: string } | undefined
  },
  hung: Set<ServerResponse>
) => {
  const sockets = new Set<Socket>()
  let server: Server | undefined
  const listen = (port: number): Promise<number> => {
    const created: Server =
      options.tls === undefined
        ? createHttpServer(onRequest)
        : createHttpsServer({ key: options.tls.key, cert: options.tls.cert }, onRequest)
    created.on("connection", (socket: Socket) => {
      sockets.add(socket)
      socket.on("close", () => sockets.delete(socket))
    })
    server = created
    return new Promise((resolve, reject) => {
      created.once("error", reject)
      created.listen(port, options.host ?? "127.0.0.1", () =>
        resolve((created.address() as AddressInfo).port)
      )
    })
  }
  const shut = (): Promise<void> =>
    new Promise((resolve) => {
      for (const res of hung) res.destroy()
      hung.clear()
      for (const socket of sockets) socket.destroy()
      if (server === undefined) resolve()
      else server.close(() => resolve())
    })
  return { listen, shut }
}
