import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"
import { Agent } from "undici"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { makeKeptAliveFetch } from "../src/internal/keptAliveFetch.js"

// The broker client's fetch over undici: what the client reads of an answer (status, headers, body) and
// sends (method, headers, string body), against a real HTTP server.
let server: Server
let base: string
const agent = new Agent()
const hanging: Array<ServerResponse> = []
const keptAliveFetch = makeKeptAliveFetch(agent)

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

describe("the broker client's kept-alive fetch", () => {
  it("sends the method, headers and string body, and answers status, headers and text", async () => {
    const response = await keptAliveFetch(`${base}/refused`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: "a=1&b=2"
    })
    expect(response.status).toBe(429)
    expect(response.ok).toBe(false)
    expect(response.headers.get("retry-after")).toBe("3")
    expect(response.headers.getSetCookie()).toEqual(["a=1", "b=2"])
    expect(JSON.parse(await response.text())).toEqual({
      method: "POST",
      type: "application/x-www-form-urlencoded",
      body: "a=1&b=2"
    })
  })

  it("answers a GET without a body, and a 204 with an empty text", async () => {
    const ok = await keptAliveFetch(`${base}/`, { headers: new Headers({ accept: "application/json" }) })
    expect(ok.status).toBe(200)
    expect(JSON.parse(await ok.text())).toEqual({ method: "GET", type: null, body: "" })
    const empty = await keptAliveFetch(new URL(`${base}/empty`), { method: "DELETE" })
    expect(empty.status).toBe(204)
    expect(await empty.text()).toBe("")
  })

  it("rejects with the signal's reason when it aborts (a timeout stays a TimeoutError)", async () => {
    const controller = new AbortController()
    const answer = keptAliveFetch(`${base}/hang`, { signal: controller.signal })
    controller.abort(new DOMException("The operation timed out", "TimeoutError"))
    await expect(answer).rejects.toMatchObject({ name: "TimeoutError" })
  })
})
