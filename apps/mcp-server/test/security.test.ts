import { request as httpRequest } from "node:http"
import { Client } from "@modelcontextprotocol/sdk/client/index.js"
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Stack, startStack } from "./support/stack.js"

const INITIALIZE = {
  jsonrpc: "2.0",
  id: 1,
  method: "initialize",
  params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "raw", version: "1" } }
}

/** A raw HTTP request (fetch cannot set Host), answered with its status, headers and body text. */
const raw = (
  url: string,
  options: { method?: string; headers?: Record<string, string>; body?: string }
): Promise<{ status: number; headers: Record<string, string | Array<string> | undefined>; body: string }> =>
  new Promise((resolve, reject) => {
    const target = new URL(url)
    const req = httpRequest(
      {
        host: target.hostname,
        port: target.port,
        path: target.pathname,
        method: options.method ?? "POST",
        headers: options.headers
      },
      (res) => {
        let body = ""
        res.setEncoding("utf8")
        res.on("data", (chunk: string) => {
          body += chunk
        })
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }))
        res.on("error", reject)
      }
    )
    req.on("error", reject)
    req.end(options.body)
  })

const initialize = (stack: Stack, token: string, headers: Record<string, string> = {}) =>
  raw(stack.mcpUrl, {
    headers: {
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      authorization: `Bearer ${token}`,
      ...headers
    },
    body: JSON.stringify(INITIALIZE)
  })

describe("MCP server: Origin and Host validation (issue 14.5)", () => {
  let stack: Stack
  let token: string
  beforeAll(async () => {
    stack = await startStack("in-process", {
      mcpServer: { allowedHosts: ["mcp.example.test"], allowedOrigins: ["https://app.example.test"] }
    })
    token = await stack.tokenFor("alice")
  })
  afterAll(() => stack?.stop())

  it("refuses a foreign Host with 403 before looking at the token or the body", async () => {
    const rebound = await initialize(stack, token, { host: "evil.example.com" })
    expect(rebound.status).toBe(403)
    expect(JSON.parse(rebound.body)).toMatchObject({ jsonrpc: "2.0", error: { code: -32000 } })
    expect(JSON.parse(rebound.body).error.message).toMatch(/Host/)
    // no token at all: still 403, not a 401 challenge that would tell the resource exists
    const anonymous = await raw(stack.mcpUrl, {
      headers: { host: "evil.example.com", "content-type": "application/json" },
      body: "{not json"
    })
    expect(anonymous.status).toBe(403)
  })

  it("refuses a foreign Origin with 403, and an Origin of a look-alike host", async () => {
    const host = new URL(stack.mcpUrl).host
    for (const origin of ["http://evil.example.com", "https://app.example.test.evil.com", "null"]) {
      const refused = await initialize(stack, token, { host, origin })
      expect({ origin, status: refused.status }).toEqual({ origin, status: 403 })
      expect(JSON.parse(refused.body).error.message).toMatch(/Origin/)
    }
  })

  it("accepts its own host, loopback aliases, the configured hosts and origins, and no Origin", async () => {
    const port = new URL(stack.mcpUrl).port
    const accepted: Array<Record<string, string>> = [
      { host: `127.0.0.1:${port}` },
      { host: `localhost:${port}`, origin: `http://localhost:${port}` },
      { host: "mcp.example.test" },
      { host: `127.0.0.1:${port}`, origin: "https://app.example.test" },
      { host: `127.0.0.1:${port}`, origin: `http://127.0.0.1:${port}` }
    ]
    for (const headers of accepted) {
      const answer = await initialize(stack, token, headers)
      expect({ headers, status: answer.status }).toEqual({ headers, status: 200 })
    }
  })

  it("the SDK client works as before", async () => {
    const client = new Client({ name: "security", version: "1.0.0" })
    const transport = new StreamableHTTPClientTransport(new URL(stack.mcpUrl), {
      requestInit: { headers: { authorization: `Bearer ${token}` } }
    })
    await client.connect(transport)
    const tools = await client.listTools()
    expect(tools.tools.length).toBeGreaterThan(0)
    await client.close()
  })

  it("the metadata document and health stay reachable under any Host (load balancers probe with theirs)", async () => {
    const health = await raw(stack.mcpUrl.replace(/\/mcp$/, "/healthz"), {
      method: "GET",
      headers: { host: "10.0.0.7:8090" }
    })
    expect(health.status).toBe(200)
  })
})
