import { connect, type Socket } from "node:net"
import { errorCallback, expectSafeErrorPage } from "@token-broker/server-kit/testing"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  ACCESS_TOKEN_TYPE,
  CALLERS,
  type CallerSpec,
  call,
  connectOverHttp,
  METRICS_TOKEN,
  type Stack,
  startStack,
  TOKEN_EXCHANGE,
  userToken
} from "./support/stack.js"

/** RFC 8693 at the broker's `/oauth/token`: `subjectToken` for provider notes, the caller's credentials in the form. */
const exchangeAtBroker = (
  stack: Stack,
  subjectToken: string,
  caller: CallerSpec,
  extra: Record<string, string> = {}
) =>
  fetch(`${stack.url}/oauth/token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: TOKEN_EXCHANGE,
      subject_token: subjectToken,
      subject_token_type: ACCESS_TOKEN_TYPE,
      audience: "notes",
      client_id: caller.id,
      client_secret: caller.secret,
      ...extra
    }).toString()
  })

const scopesOf = (token: string): Array<string> => {
  const payload = JSON.parse(Buffer.from(token.split(".")[1] ?? "", "base64url").toString("utf8")) as {
    scope?: string
  }
  return (payload.scope ?? "").split(" ").filter((s) => s.length > 0)
}

describe("caller policy without loopholes", () => {
  let stack: Stack
  beforeAll(async () => {
    stack = await startStack({ backend: "memory" })
    const consent = await connectOverHttp(stack, 1) // u-bob, read+write, started by agent
    expect(consent.status).toBe(200)
  })
  afterAll(() => stack.stop())

  it("an empty scope list is refused, never read as 'no downscope' (issue 14.1)", async () => {
    const empty = await call(stack, "POST", "/v1/grants/u-bob/notes/token", {
      caller: CALLERS.narrow,
      json: { scopes: [] }
    })
    expect(empty.status).toBe(400)
    expect(empty.body).toMatchObject({ code: "invalid_request", field: "scopes" })
    expect(String(empty.body.detail)).toMatch(/at least one scope/)
    // the agent (any scope) is refused the same way: an empty list is a mistake, not a wildcard
    const agent = await call(stack, "POST", "/v1/grants/u-bob/notes/token", {
      caller: CALLERS.agent,
      json: { scopes: [] }
    })
    expect(agent.status).toBe(400)
    expect(agent.body).toMatchObject({ code: "invalid_request", field: "scopes" })
    const authorize = await call(stack, "POST", "/v1/grants/u-bob/notes/authorize", {
      caller: CALLERS.agent,
      json: { scopes: [] }
    })
    expect(authorize.status).toBe(400)
    expect(authorize.body).toMatchObject({ code: "invalid_request", field: "scopes" })
  })

  it("no scopes given means the caller's own allowed scopes (issue 14.1)", async () => {
    for (const json of [undefined, {}]) {
      const token = await call(stack, "POST", "/v1/grants/u-bob/notes/token", {
        caller: CALLERS.narrow,
        json
      })
      expect(token.status).toBe(200)
      expect(token.body.scopes).toEqual(["notes:read"])
      expect(scopesOf(String(token.body.accessToken))).toEqual(["notes:read"])
    }
  })

  it("token exchange: an empty scope parameter is refused; none means the caller's scopes (issue 14.1)", async () => {
    const subjectToken = await userToken(stack.idp, 1)
    const form = (extra: Record<string, string>) =>
      exchangeAtBroker(stack, subjectToken, CALLERS.narrow, extra)
    for (const scope of ["", " "]) {
      const refused = await form({ scope })
      expect(refused.status).toBe(400)
      expect(await refused.json()).toMatchObject({ error: "invalid_scope" })
    }
    const none = await form({})
    expect(none.status).toBe(200)
    const body = (await none.json()) as { access_token: string; scope?: string }
    expect(body.scope).toBe("notes:read")
    expect(scopesOf(body.access_token)).toEqual(["notes:read"])
  })

  it("token exchange: a repeated parameter is refused, naming the first one repeated in the form", async () => {
    const subjectToken = await userToken(stack.idp, 1)
    const send = (body: string) =>
      fetch(`${stack.url}/oauth/token`, {
        method: "POST",
        headers: {
          "content-type": "application/x-www-form-urlencoded",
          authorization: `Basic ${Buffer.from(`${CALLERS.narrow.id}:${CALLERS.narrow.secret}`).toString("base64")}`
        },
        body
      })
    const base = new URLSearchParams({
      grant_type: TOKEN_EXCHANGE,
      subject_token: subjectToken,
      subject_token_type: ACCESS_TOKEN_TYPE
    }).toString()
    const repeated = await send(`${base}&audience=notes&scope=notes:read&scope=notes:read&audience=notes`)
    expect(repeated.status).toBe(400)
    expect(await repeated.json()).toMatchObject({
      error: "invalid_request",
      error_description: "The parameter audience is repeated"
    })
    // a parameter named like an object's prototype is a parameter like any other
    const odd = await send(`${base}&audience=notes&__proto__=x`)
    expect(odd.status).toBe(200)
  })

  it("a caller exchanges only subject tokens its policy names (issue 14.7)", async () => {
    const subjectToken = await userToken(stack.idp, 1) // issued to mcp-client, audience the MCP server
    const exchange = (caller: CallerSpec) => exchangeAtBroker(stack, subjectToken, caller)
    const refused = await exchange(CALLERS.bound)
    expect(refused.status).toBe(403)
    expect(await refused.json()).toMatchObject({ error: "unauthorized_client" })
    // narrow names mcp-client among its subjectTokens.clientIds
    expect((await exchange(CALLERS.narrow)).status).toBe(200)
  })

  it("a cached exchange answered without the runtime still applies the caller's subject-token policy", async () => {
    const subjectToken = await userToken(stack.idp, 0) // not u-bob's
    const exchange = async (caller: CallerSpec) => {
      const response = await exchangeAtBroker(stack, subjectToken, caller, { scope: "notes:read" })
      return { status: response.status, body: (await response.json()) as Record<string, unknown> }
    }
    const first = await exchange(CALLERS.agent)
    expect(first.status).toBe(200)
    // remembered and cached now: the same token answers again, and each refusal still happens
    expect((await exchange(CALLERS.agent)).body.access_token).toBe(first.body.access_token)
    expect(await exchange(CALLERS.bound)).toMatchObject({
      status: 403,
      body: { error: "unauthorized_client", error_description: expect.stringMatching(/subjectTokens/) }
    })
    expect(await exchange(CALLERS.narrow)).toMatchObject({
      status: 403,
      body: {
        error: "unauthorized_client",
        error_description: expect.stringMatching(/subject of this token/)
      }
    })
    expect((await exchange(CALLERS.agent)).body.access_token).toBe(first.body.access_token)
  })

  it("consent started without scopes asks for the caller's allowed scopes only (issue 14.3)", async () => {
    const started = await call(stack, "POST", "/v1/grants/u-alice/notes/authorize", {
      caller: CALLERS.steward,
      json: {}
    })
    expect(started.status).toBe(200)
    const asked = (new URL(String(started.body.authorizationUrl)).searchParams.get("scope") ?? "").split(" ")
    expect(asked).toContain("notes:read")
    expect(asked).not.toContain("notes:write")
    // a caller that may ask for any scope still gets the provider's default scopes
    const agent = await call(stack, "POST", "/v1/grants/u-alice/notes/authorize", {
      caller: CALLERS.agent,
      json: {}
    })
    const defaults = (new URL(String(agent.body.authorizationUrl)).searchParams.get("scope") ?? "").split(" ")
    expect(defaults).toEqual(expect.arrayContaining(["notes:read", "notes:write"]))
    // and finishing the steward's consent stores a read-only grant
    const alice = stack.idp.users[0]
    if (alice === undefined) throw new Error("no dev-idp user")
    const callback = await stack.idp.driveAuthorization(String(started.body.authorizationUrl), {
      username: alice.username,
      password: alice.password
    })
    // delivered to the broker's bound address, as a load balancer in front of the public URL would
    expect((await fetch(new URL(`${callback.pathname}${callback.search}`, stack.url))).status).toBe(200)
    const grant = await call(stack, "GET", "/v1/grants/u-alice/notes", { caller: CALLERS.agent })
    expect(grant.body.scopes).toContain("notes:read")
    expect(grant.body.scopes).not.toContain("notes:write")
  })

  it("the consent callback shows a fixed message per RFC 6749 error code, never the provider's text (issue 14.9)", async () => {
    const cases: Array<[string, RegExp]> = [
      ["access_denied", /did not allow access/],
      ["temporarily_unavailable", /try again shortly/i],
      ["<b>made-up</b>", /did not grant access/]
    ]
    for (const [error, expected] of cases) {
      const started = await call(stack, "POST", "/v1/grants/u-alice/notes/authorize", {
        caller: CALLERS.agent,
        json: {}
      })
      const state = new URL(String(started.body.authorizationUrl)).searchParams.get("state") ?? ""
      const page = await fetch(errorCallback(`${stack.url}/connect/callback`, state, error))
      expect(page.status).toBeGreaterThanOrEqual(400)
      await expectSafeErrorPage(page, expected)
    }
  })

  it("consent: scopes outside the caller's policy are refused, asked or defaulted (issue 14.3)", async () => {
    const asked = await call(stack, "POST", "/v1/grants/u-alice/notes/authorize", {
      caller: CALLERS.steward,
      json: { scopes: ["notes:write"] }
    })
    expect(asked.status).toBe(403)
    expect(asked.body).toMatchObject({ code: "forbidden", reason: "scope_not_allowed" })
  })
})

describe("failed caller authentication is limited per address, before scrypt (issue 14.2)", () => {
  let stack: Stack
  beforeAll(async () => {
    stack = await startStack({
      backend: "memory",
      server: {
        trustProxy: true,
        callerAuthentication: { maxFailures: 5, failureWindow: "1 minute", maxConcurrent: 1, maxQueued: 1 }
      }
    })
  })
  afterAll(() => stack.stop())

  const from = (address: string) => ({ "x-forwarded-for": address })
  const wrong = { id: CALLERS.agent.id, secret: "not-the-secret" }

  it("answers 429 with Retry-After once an address has failed maxFailures times; other callers are served", async () => {
    const flooder = "203.0.113.7"
    // the agent authenticated from this address before the flood
    expect(
      (await call(stack, "GET", "/v1/grants", { caller: CALLERS.agent, headers: from(flooder) })).status
    ).toBe(200)
    const statuses: Array<number> = []
    let retryAfter: string | null = null
    for (let i = 0; i < 20; i++) {
      const answer = await call(stack, "GET", "/v1/grants", { caller: wrong, headers: from(flooder) })
      statuses.push(answer.status)
      if (answer.status === 429) {
        retryAfter = answer.headers.get("retry-after")
        expect(answer.body).toMatchObject({ code: "rate_limited", status: 429 })
      }
    }
    expect(statuses.filter((s) => s === 401)).toHaveLength(5)
    expect(statuses.filter((s) => s === 429)).toHaveLength(15)
    expect(Number(retryAfter)).toBeGreaterThan(0)
    // the token endpoint counts the same failures, in RFC 6749 form with Retry-After
    const token = await fetch(`${stack.url}/oauth/token`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", ...from(flooder) },
      body: new URLSearchParams({
        grant_type: TOKEN_EXCHANGE,
        client_id: "agent",
        client_secret: "x"
      }).toString()
    })
    expect(token.status).toBe(429)
    expect(Number(token.headers.get("retry-after"))).toBeGreaterThan(0)
    // a caller already verified from that address is still served (no scrypt needed) ...
    expect(
      (await call(stack, "GET", "/v1/grants", { caller: CALLERS.agent, headers: from(flooder) })).status
    ).toBe(200)
    // ... and so is a legitimate caller from another address
    expect(
      (await call(stack, "GET", "/v1/grants", { caller: CALLERS.reader, headers: from("198.51.100.1") }))
        .status
    ).toBe(200)
  })

  it("caps concurrent verifications: a burst of bad credentials from many addresses gets 429s, a caller is served after", async () => {
    const answers = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        call(stack, "GET", "/v1/grants", { caller: wrong, headers: from(`192.0.2.${i + 1}`) })
      )
    )
    const statuses = answers.map((a) => a.status)
    expect(statuses.every((s) => s === 401 || s === 429)).toBe(true)
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThan(0)
    for (const answer of answers.filter((a) => a.status === 429)) {
      expect(Number(answer.headers.get("retry-after"))).toBeGreaterThan(0)
    }
    expect(
      (await call(stack, "GET", "/v1/grants", { caller: CALLERS.steward, headers: from("198.51.100.2") }))
        .status
    ).toBe(403) // authenticated (steward may not list every provider): not 401, not 429
  })
})

/** A socket to the server; resolves once connected. */
const open = (url: string): Promise<Socket> =>
  new Promise((resolve, reject) => {
    const { hostname, port } = new URL(url)
    const socket = connect(Number(port), hostname, () => resolve(socket))
    socket.once("error", reject)
  })

/** Resolves with what the server sent once it closes the connection. */
const closed = (socket: Socket): Promise<string> =>
  new Promise((resolve) => {
    let received = ""
    socket.on("data", (chunk: Buffer) => {
      received += chunk.toString()
    })
    socket.on("error", () => undefined)
    socket.once("close", () => resolve(received))
  })

/** Sends `head`, then one more byte every 100 ms (a slow-loris client) until the server closes it. */
const slowLoris = async (url: string, head: string): Promise<string> => {
  const socket = await open(url)
  const done = closed(socket)
  socket.write(head)
  const drip = setInterval(() => {
    if (!socket.destroyed) socket.write("a")
  }, 100)
  try {
    return await done
  } finally {
    clearInterval(drip)
  }
}

describe("slow and hoarding clients are cut off (issue 14.4)", () => {
  let stack: Stack
  beforeAll(async () => {
    stack = await startStack({
      backend: "memory",
      server: { connections: { requestTimeout: "1 second", headersTimeout: "1 second" } }
    })
  })
  afterAll(() => stack.stop())

  it("headers sent one byte at a time: the connection is closed", async () => {
    const received = await slowLoris(stack.url, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    expect(received === "" || received.startsWith("HTTP/1.1 408")).toBe(true)
  })

  it("a body sent one byte at a time: the connection is closed", async () => {
    const received = await slowLoris(
      stack.url,
      "POST /v1/grants/u-bob/notes/token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 60000\r\n\r\n"
    )
    expect(received === "" || received.startsWith("HTTP/1.1 408")).toBe(true)
  })
})

describe("the connection cap (issue 14.4)", () => {
  let stack: Stack
  beforeAll(async () => {
    stack = await startStack({ backend: "memory", server: { connections: { max: 3 } } })
  })
  afterAll(() => stack.stop())

  it("a connection beyond server.connections.max is closed; the open ones still work", async () => {
    const held = [await open(stack.url), await open(stack.url), await open(stack.url)]
    const extra = await open(stack.url)
    expect(await closed(extra)).toBe("")
    const first = held[0]
    if (first === undefined) throw new Error("no socket")
    const answer = new Promise<string>((resolve) => {
      first.once("data", (chunk: Buffer) => resolve(chunk.toString()))
    })
    first.write("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    expect(await answer).toMatch(/^HTTP\/1.1 200/)
    for (const socket of held) socket.destroy()
  })
})

describe("/metrics behind a bearer token (issue 14.11)", () => {
  let stack: Stack
  beforeAll(async () => {
    stack = await startStack({
      backend: "memory",
      server: { metrics: { token: { env: "TB_METRICS_TOKEN" } } }
    })
  })
  afterAll(() => stack.stop())

  it("answers 401 without the token or with a wrong one, and the metrics with it", async () => {
    for (const authorization of [undefined, "Bearer wrong-token", `Basic ${METRICS_TOKEN}`]) {
      const refused = await fetch(`${stack.url}/metrics`, {
        headers: authorization === undefined ? {} : { authorization }
      })
      expect({ authorization, status: refused.status }).toEqual({ authorization, status: 401 })
      expect(refused.headers.get("www-authenticate")).toMatch(/^Bearer /)
      expect(await refused.text()).not.toContain("http_requests")
    }
    const served = await fetch(`${stack.url}/metrics`, {
      headers: { authorization: `Bearer ${METRICS_TOKEN}` }
    })
    expect(served.status).toBe(200)
    expect(await served.text()).toMatch(/^# (HELP|TYPE) /m)
    // health and readiness stay open for probes
    expect((await fetch(`${stack.url}/healthz`)).status).toBe(200)
  })
})
