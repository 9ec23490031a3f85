import { createServer } from "node:http"
import type { AddressInfo } from "node:net"

/** A loopback TCP port with nothing listening on it: a provider or JWKS endpoint that is down. */
export const closedPort = async (): Promise<number> => {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const port = (server.address() as AddressInfo).port
  await new Promise((resolve) => server.close(resolve))
  return port
}
