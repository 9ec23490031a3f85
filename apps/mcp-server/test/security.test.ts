import { request as httpRequest } from "node:http"
import { connect } from "node:net"
import { Client } from "@modelcontextprotocol/sdk/client/index.js"
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js"
import { errorCallback, expectSafeErrorPage } from "@token-broker/server-kit/testing"
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
    // every tool returns structured content and declares its shape (issue 14.12); the SDK client checks
    // each tool's structured content against it from here on
    const undeclared = tools.tools.filter((tool) => tool.outputSchema?.type !== "object").map((t) => t.name)
    expect(undeclared).toEqual([])
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

const connectAs = async (stack: Stack, token: string, address: string) => {
  const client = new Client({ name: "security", version: "1.0.0" })
  const transport = new StreamableHTTPClientTransport(new URL(stack.mcpUrl), {
    requestInit: { headers: { authorization: `Bearer ${token}`, "x-forwarded-for": address } }
  })
  await client.connect(transport)
  return { client, transport }
}

describe("MCP sessions are capped per subject (issue 14.6)", () => {
  let stack: Stack
  beforeAll(async () => {
    stack = await startStack("in-process", {
      mcpServer: { trustProxy: true, sessions: { maxPerSubject: 2 } }
    })
  })
  afterAll(() => stack?.stop())

  it("a subject's new session evicts that subject's own oldest, never another subject's", async () => {
    const [alice, bob] = await Promise.all([stack.tokenFor("alice"), stack.tokenFor("bob")])
    const bobs = await connectAs(stack, bob, "10.0.0.9")
    const first = await connectAs(stack, alice, "10.0.0.1")
    const second = await connectAs(stack, alice, "10.0.0.2")
    await first.client.listTools()
    const third = await connectAs(stack, alice, "10.0.0.3")
    // alice's least recently used session (the second: the first was used after it) is gone
    const stale = await fetch(stack.mcpUrl, {
      method: "POST",
      headers: {
        authorization: `Bearer ${alice}`,
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
        "mcp-session-id": second.transport.sessionId ?? "",
        "mcp-protocol-version": "2025-11-25"
      },
      body: JSON.stringify({ jsonrpc: "2.0", id: 9, method: "tools/list" })
    })
    expect(stale.status).toBe(404)
    for (const open of [first, third, bobs])
      expect((await open.client.listTools()).tools.length).toBeGreaterThan(0)
    await Promise.all([first, third, bobs].map((s) => s.client.close()))
  })
})

describe("MCP session creation is rate-limited per subject and per address (issue 14.6)", () => {
  let stack: Stack
  beforeAll(async () => {
    stack = await startStack("in-process", {
      mcpServer: {
        trustProxy: true,
        sessions: { createLimit: { perSubject: 4, perAddress: 3, timeWindow: "1 minute" } }
      }
    })
  })
  afterAll(() => stack?.stop())

  const open = (token: string, address: string) => initialize(stack, token, { "x-forwarded-for": address })

  it("per subject: the fifth initialize in the window is 429 with Retry-After, from any address", async () => {
    const bob = await stack.tokenFor("bob")
    const statuses: Array<number> = []
    for (let i = 0; i < 5; i++) statuses.push((await open(bob, `10.0.1.${i + 1}`)).status)
    expect(statuses).toEqual([200, 200, 200, 200, 429])
    const limited = await open(bob, "10.0.1.99")
    expect(limited.status).toBe(429)
    expect(Number(limited.headers["retry-after"])).toBeGreaterThan(0)
    expect(JSON.parse(limited.body)).toMatchObject({ jsonrpc: "2.0", error: { code: -32000 } })
  })

  it("per address: the fourth initialize from one address is 429; the same subject elsewhere is served", async () => {
    const alice = await stack.tokenFor("alice")
    const statuses: Array<number> = []
    for (let i = 0; i < 4; i++) statuses.push((await open(alice, "10.0.2.1")).status)
    expect(statuses).toEqual([200, 200, 200, 429])
    expect((await open(alice, "10.0.2.2")).status).toBe(200)
  })
})

/** Sends `head`, then one more byte every 100 ms (a slow-loris client); resolves when the server closes it. */
const slowLoris = (url: string, head: string): Promise<string> =>
  new Promise((resolve, reject) => {
    const { hostname, port } = new URL(url)
    let received = ""
    let drip: ReturnType<typeof setInterval> | undefined
    const socket = connect(Number(port), hostname, () => {
      socket.write(head)
      drip = setInterval(() => {
        if (!socket.destroyed) socket.write("a")
      }, 100)
    })
    socket.on("data", (chunk: Buffer) => {
      received += chunk.toString()
    })
    socket.once("error", (error) => (received === "" && drip === undefined ? reject(error) : undefined))
    socket.once("close", () => {
      clearInterval(drip)
      resolve(received)
    })
  })

describe("MCP server: slow clients are cut off (issue 14.4)", () => {
  let stack: Stack
  beforeAll(async () => {
    stack = await startStack("in-process", {
      mcpServer: { connections: { requestTimeout: "1 second", headersTimeout: "1 second" } }
    })
  })
  afterAll(() => stack?.stop())

  it("a request body sent one byte at a time: the connection is closed", async () => {
    const { host, pathname } = new URL(stack.mcpUrl)
    // straight to the bound server (the test's front door would keep the client side open)
    const received = await slowLoris(
      `${stack.mcp.url}${pathname}`,
      `POST ${pathname} HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer ${await stack.tokenFor("alice")}\r\nContent-Type: application/json\r\nContent-Length: 60000\r\n\r\n`
    )
    expect(received === "" || received.startsWith("HTTP/1.1 408")).toBe(true)
  })

  it("headers sent one byte at a time: the connection is closed", async () => {
    const received = await slowLoris(
      `${stack.mcp.url}/healthz`,
      "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
    )
    expect(received === "" || received.startsWith("HTTP/1.1 408")).toBe(true)
  })
})

describe("MCP server: the consent callback page (issue 14.9)", () => {
  let stack: Stack
  beforeAll(async () => {
    stack = await startStack("in-process")
  })
  afterAll(() => stack?.stop())

  it("shows a fixed message per RFC 6749 error code, never the provider's text, with the security headers", async () => {
    const client = new Client({ name: "security", version: "1.0.0" })
    await client.connect(
      new StreamableHTTPClientTransport(new URL(stack.mcpUrl), {
        requestInit: { headers: { authorization: `Bearer ${await stack.tokenFor("alice")}` } }
      })
    )
    for (const [error, expected] of [
      ["server_error", /provider had a problem/],
      ["<b>made-up</b>", /did not grant access/]
    ] as const) {
      const result = await client.callTool({ name: "connect_provider", arguments: { provider: "notes" } })
      const link = String((result.structuredContent as { authorizationUrl?: string }).authorizationUrl)
      const state = new URL(link).searchParams.get("state") ?? ""
      const page = await fetch(errorCallback(stack.callbackUrl, state, error))
      expect(page.status).toBe(400)
      await expectSafeErrorPage(page, expected)
    }
    await client.close()
  })
})

/** A client_credentials token of dev-idp's "token-broker" client for the MCP server: `sub` is the client id. */
const clientToken = async (stack: Stack): Promise<string> => {
  const discovery = (await (await fetch(`${stack.idp.issuer}/.well-known/openid-configuration`)).json()) as {
    token_endpoint: string
  }
  const client = stack.idp.client("token-broker")
  const answer = await fetch(discovery.token_endpoint, {
    method: "POST",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      authorization: `Basic ${Buffer.from(`${client.clientId}:${client.clientSecret ?? ""}`).toString("base64")}`
    },
    body: new URLSearchParams({
      grant_type: "client_credentials",
      resource: stack.mcpUrl,
      scope: "mcp:tools notes:read notes:write"
    }).toString()
  })
  const body = (await answer.json()) as { access_token?: string; error?: string }
  if (body.access_token === undefined) throw new Error(`client_credentials refused: ${JSON.stringify(body)}`)
  return body.access_token
}

describe("MCP server: tokens issued to clients are not users (issue 14.8)", () => {
  let stack: Stack
  let allowing: Stack
  beforeAll(async () => {
    ;[stack, allowing] = await Promise.all([
      startStack("in-process"),
      startStack("in-process", { mcpServer: { allowClientTokens: true } })
    ])
  })
  afterAll(async () => {
    await Promise.all([stack?.stop(), allowing?.stop()])
  })

  it("refuses a client_credentials token (sub = client id) with 401 invalid_token", async () => {
    const token = await clientToken(stack)
    const refused = await initialize(stack, token)
    expect(refused.status).toBe(401)
    expect(String(refused.headers["www-authenticate"])).toContain('error="invalid_token"')
    expect(JSON.parse(refused.body).error_description).toMatch(/issued to a client/)
    // again, now that its signature and claims verified once (a remembered verification): still refused
    const again = await initialize(stack, token)
    expect(again.status).toBe(401)
    expect(JSON.parse(again.body).error_description).toMatch(/issued to a client/)
    // a user's token still works
    expect((await initialize(stack, await stack.tokenFor("alice"))).status).toBe(200)
  })

  it("accepts it where mcpServer.allowClientTokens is set", async () => {
    expect((await initialize(allowing, await clientToken(allowing))).status).toBe(200)
  })
})

describe("MCP server: the bearer check comes first; parse errors are JSON-RPC (issue 14.12)", () => {
  let stack: Stack
  beforeAll(async () => {
    stack = await startStack("in-process")
  })
  afterAll(() => stack?.stop())

  it("answers an anonymous request with a large body 401 before the body has been sent", async () => {
    const { hostname, port, pathname, host } = new URL(stack.mcpUrl)
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(
        {
          host: hostname,
          port,
          path: pathname,
          method: "POST",
          headers: { host, "content-type": "application/json", "content-length": String(4 * 1024 * 1024 - 1) }
        },
        (res) => {
          res.resume()
          resolve(res.statusCode ?? 0)
          req.destroy()
        }
      )
      req.on("error", (error) => (req.destroyed ? undefined : reject(error)))
      req.write('{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"x":"') // and nothing more
    })
    expect(status).toBe(401)
  })

  it("answers a body that is not JSON with JSON-RPC -32700 (parse error)", async () => {
    const answer = await raw(stack.mcpUrl, {
      headers: {
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
        authorization: `Bearer ${await stack.tokenFor("alice")}`
      },
      body: '{"jsonrpc": "2.0", "id": 1, "method": '
    })
    expect(answer.status).toBe(400)
    expect(JSON.parse(answer.body)).toMatchObject({ jsonrpc: "2.0", id: null, error: { code: -32700 } })
  })
})

describe("MCP server: CORS for browser-based clients of allowed origins (issue 14.12)", () => {
  let stack: Stack
  beforeAll(async () => {
    stack = await startStack("in-process", { mcpServer: { allowedOrigins: ["https://app.example.test"] } })
  })
  afterAll(() => stack?.stop())

  it("answers a preflight from an allowed origin with 204 and the CORS headers; a foreign origin 403", async () => {
    const host = new URL(stack.mcpUrl).host
    const preflight = (origin: string) =>
      raw(stack.mcpUrl, {
        method: "OPTIONS",
        headers: {
          host,
          origin,
          "access-control-request-method": "POST",
          "access-control-request-headers": "authorization, content-type, mcp-session-id"
        }
      })
    const allowed = await preflight("https://app.example.test")
    expect(allowed.status).toBe(204)
    expect(allowed.headers["access-control-allow-origin"]).toBe("https://app.example.test")
    expect(String(allowed.headers["access-control-allow-methods"])).toContain("POST")
    expect(String(allowed.headers["access-control-allow-headers"]).toLowerCase()).toContain("authorization")
    expect(String(allowed.headers["access-control-allow-headers"]).toLowerCase()).toContain("mcp-session-id")
    expect((await preflight("https://evil.example.com")).status).toBe(403)
  })

  it("an allowed origin's requests carry Access-Control-Allow-Origin and expose Mcp-Session-Id", async () => {
    const host = new URL(stack.mcpUrl).host
    const answer = await initialize(stack, await stack.tokenFor("alice"), {
      host,
      origin: "https://app.example.test"
    })
    expect(answer.status).toBe(200)
    expect(answer.headers["access-control-allow-origin"]).toBe("https://app.example.test")
    expect(String(answer.headers["access-control-expose-headers"]).toLowerCase()).toContain("mcp-session-id")
    // a 401 challenge is readable by the page too
    const anonymous = await raw(stack.mcpUrl, {
      headers: { host, origin: "https://app.example.test", "content-type": "application/json" },
      body: "{}"
    })
    expect(anonymous.status).toBe(401)
    expect(anonymous.headers["access-control-allow-origin"]).toBe("https://app.example.test")
  })
})

describe("MCP server: notes content within the upstream's limit (issue 14.12)", () => {
  let stack: Stack
  beforeAll(async () => {
    stack = await startStack("in-process")
  })
  afterAll(() => stack?.stop())

  it("refuses content above 256 KiB (UTF-8) as invalid input, before any upstream call", async () => {
    const client = new Client({ name: "security", version: "1.0.0" })
    await client.connect(
      new StreamableHTTPClientTransport(new URL(stack.mcpUrl), {
        requestInit: { headers: { authorization: `Bearer ${await stack.tokenFor("alice")}` } }
      })
    )
    // 100,000 characters, 300,000 bytes: within a character limit, beyond the upstream's byte limit
    const result = (await client.callTool({
      name: "notes_create",
      arguments: { title: "big", content: "\u20ac".repeat(100_000) }
    })) as { isError?: boolean; content: Array<{ type: string; text?: string }> }
    expect(result.isError).toBe(true)
    expect(result.content.map((c) => c.text ?? "").join("\n")).toMatch(/256 KiB/)
    await client.close()
  })
})
