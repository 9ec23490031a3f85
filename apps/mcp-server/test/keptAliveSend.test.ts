import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"
import { Agent } from "undici"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { makeKeptAliveSend } from "../src/internal/keptAliveSend.js"

// The broker client's send over undici: what the client reads of an answer (status, Retry-After, body)
// and sends (method, headers, string body), against a real HTTP server.
let server: Server
let base: string
const agent = new Agent()
const hanging: Array<ServerResponse> = []
const send = makeKeptAliveSend(agent)
const never = new AbortController().signal

beforeAll(async () => {
  server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Array<Buffer> = []
    req.on("data", (chunk: Buffer) => chunks.push(chunk))
    req.on("end", () => {
      if (req.url === "/empty") return res.writeHead(204).end()
      if (req.url === "/hang") return void hanging.push(res)
      res.setHeader("set-cookie", ["a=1", "b=2"])
      res.writeHead(req.url === "/refused" ? 429 : 200, {
        "content-type": "application/json",
        "retry-after": "3"
      })
      res.end(
        JSON.stringify({
          method: req.method,
          type: req.headers["content-type"] ?? null,
          body: Buffer.concat(chunks).toString("utf8")
        })
      )
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})
afterAll(async () => {
  for (const res of hanging) res.destroy()
  await agent.close()
  await new Promise<void>((resolve) => server.close(() => resolve()))
})

describe("the broker client's kept-alive send", () => {
  it("sends the method, headers and string body, and answers status, Retry-After and text", async () => {
    const answer = await send({
      url: `${base}/refused`,
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: "a=1&b=2",
      signal: never
    })
    expect(answer.status).toBe(429)
    expect(answer.retryAfter).toBe("3")
    expect(JSON.parse(answer.text)).toEqual({
      method: "POST",
      type: "application/x-www-form-urlencoded",
      body: "a=1&b=2"
    })
  })

  it("answers a GET without a body, and a 204 with an empty text", async () => {
    const ok = await send({
      url: `${base}/`,
      method: "GET",
      headers: { accept: "application/json" },
      body: undefined,
      signal: never
    })
    expect(ok.status).toBe(200)
    expect(ok.retryAfter).toBe("3")
    expect(JSON.parse(ok.text)).toEqual({ method: "GET", type: null, body: "" })
    const empty = await send({
      url: `${base}/empty`,
      method: "DELETE",
      headers: {},
      body: undefined,
      signal: never
    })
    expect(empty.status).toBe(204)
    expect(empty.text).toBe("")
    expect(empty.retryAfter).toBeUndefined()
  })

  it("rejects with the signal's reason when it aborts (a timeout stays a TimeoutError)", async () => {
    const controller = new AbortController()
    const answer = send({
      url: `${base}/hang`,
      method: "GET",
      headers: {},
      body: undefined,
      signal: controller.signal
    })
    controller.abort(new DOMException("The operation timed out", "TimeoutError"))
    await expect(answer).rejects.toMatchObject({ name: "TimeoutError" })
  })
})
