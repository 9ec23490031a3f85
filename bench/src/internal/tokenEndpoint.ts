/**
 * A minimal OAuth 2.0 token endpoint in a process of its own, for the storm's memory figure: every
 * `refresh_token` grant is answered with a new random access and refresh token (one hour), and the
 * grants it saw are counted per refresh token, so the bench can check exactly one refresh per grant.
 * It prints `PORT <n>` once listening; `GET /count` answers `{ refreshes, distinct, peak }`.
 *
 *   node --import tsx src/internal/tokenEndpoint.ts
 */
import { randomBytes } from "node:crypto"
import { createServer } from "node:http"

const seen = new Set<string>()
let refreshes = 0
let inFlight = 0
let peak = 0

const server = createServer((request, response) => {
  if (request.method === "GET" && request.url === "/count") {
    response.writeHead(200, { "content-type": "application/json" })
    response.end(JSON.stringify({ refreshes, distinct: seen.size, peak }))
    return
  }
  if (request.method !== "POST" || request.url !== "/token") {
    response.writeHead(404).end()
    return
  }
  inFlight += 1
  peak = Math.max(peak, inFlight)
  let body = ""
  request.setEncoding("utf8")
  request.on("data", (chunk: string) => {
    body += chunk
  })
  request.on("end", () => {
    inFlight -= 1
    const form = new URLSearchParams(body)
    const refreshToken = form.get("refresh_token")
    if (form.get("grant_type") !== "refresh_token" || refreshToken === null) {
      response.writeHead(400, { "content-type": "application/json" })
      response.end(JSON.stringify({ error: "unsupported_grant_type" }))
      return
    }
    refreshes += 1
    seen.add(refreshToken)
    response.writeHead(200, { "content-type": "application/json", "cache-control": "no-store" })
    response.end(
      JSON.stringify({
        access_token: randomBytes(24).toString("base64url"),
        token_type: "Bearer",
        expires_in: 3600,
        refresh_token: randomBytes(24).toString("base64url"),
        scope: "notes:read notes:write"
      })
    )
  })
})
// Idle keep-alive sockets stay open longer than the broker's pauses: a 100,000-call storm's heap makes GC
// pauses of seconds, and a socket this side closed while the broker reused it is a refresh whose outcome
// is unknown (the broker rightly does not retry it), which the bench counts as a failed call.
server.keepAliveTimeout = 120_000
server.headersTimeout = 121_000
server.listen(0, "127.0.0.1", () => {
  const address = server.address()
  if (address === null || typeof address === "string") throw new Error("no port")
  console.log(`PORT ${address.port}`)
})
process.on("disconnect", () => process.exit(0))
process.stdin.on("end", () => process.exit(0))
process.stdin.resume()
