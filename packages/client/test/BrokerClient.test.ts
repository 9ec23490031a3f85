import { createServer, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { TokenSource } from "@token-broker/core"
import { Effect, Redacted } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { BrokerClient, layerRemote } from "../src/index.js"

/**
 * The client's mapping of the broker's answers, against a stand-in server that answers what the real
 * broker answers (apps/broker's end-to-end tests run this client against the real one).
 */
let server: Server
let url: string
const seen: Array<{ method: string; url: string; authorization: string; body: string }> = []
const answers = new Map<string, { status: number; body: unknown; headers?: Record<string, string> }>()

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = ""
    req.on("data", (chunk) => {
      body += chunk
    })
    req.on("end", () => {
      seen.push({
        method: req.method ?? "",
        url: req.url ?? "",
        authorization: req.headers.authorization ?? "",
        body
      })
      const answer = answers.get(`${req.method} ${(req.url ?? "").split("?")[0]}`) ?? {
        status: 404,
        body: { code: "not_found", detail: "no route" }
      }
      res.writeHead(answer.status, { "content-type": "application/json", ...answer.headers })
      res.end(JSON.stringify(answer.body))
    })
  })
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done))
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})
afterAll(() => new Promise<void>((done) => server.close(() => done())))

const problem = (status: number, code: string, extra: Record<string, unknown> = {}) => ({
  status,
  body: {
    type: `urn:token-broker:problem:${code}`,
    title: code,
    status,
    detail: `detail of ${code}`,
    code,
    ...extra
  }
})

describe("BrokerClient", () => {
  it("sends Basic credentials (form-urlencoded first) and parses a token", async () => {
    answers.set("POST /v1/grants/u%2Fone/notes/token", {
      status: 200,
      body: {
        accessToken: "at",
        tokenType: "Bearer",
        expiresIn: 60,
        expiresAt: "2030-01-01T00:00:00.000Z",
        scopes: ["a"],
        source: "cache"
      }
    })
    const client = BrokerClient.make({
      url: `${url}/`,
      clientId: "my app",
      clientSecret: Redacted.make("p:w")
    })
    const token = await client.backgroundToken({
      subject: "u/one",
      provider: "notes",
      scopes: ["a"],
      minTtl: "90 seconds"
    })
    expect(Redacted.value(token.accessToken)).toBe("at")
    expect(token.expiresAt).toBe(Date.parse("2030-01-01T00:00:00.000Z"))
    const request = seen.at(-1)
    expect(request?.authorization).toBe(`Basic ${Buffer.from("my+app:p%3Aw").toString("base64")}`)
    expect(JSON.parse(request?.body ?? "")).toEqual({ scopes: ["a"], minTtl: 90 })
  })

  it("maps problem+json back to core's typed errors by code, and its own refusals to BrokerRequestError", async () => {
    const client = BrokerClient.make({ url, clientId: "app", clientSecret: "s" })
    const cases: Array<
      [{ status: number; body: unknown; headers?: Record<string, string> }, Record<string, unknown>]
    > = [
      [
        problem(409, "consent_required", { subject: "u", provider: "notes", reason: "invalid_grant" }),
        { _tag: "ConsentRequired", reason: "invalid_grant" }
      ],
      [
        {
          ...problem(503, "upstream_unavailable", {
            provider: "notes",
            reason: "rate_limited",
            retryAfter: 7
          })
        },
        { _tag: "UpstreamUnavailable", reason: "rate_limited" }
      ],
      [
        problem(404, "provider_not_found", { provider: "nope" }),
        { _tag: "ProviderNotFound", provider: "nope" }
      ],
      [problem(400, "invalid_request", { field: "scopes" }), { _tag: "InvalidRequest", field: "scopes" }],
      [problem(503, "storage_unavailable"), { _tag: "StorageUnavailable" }],
      [
        problem(403, "forbidden", { reason: "scope_not_allowed" }),
        { _tag: "BrokerRequestError", status: 403, code: "forbidden", reason: "scope_not_allowed" }
      ],
      [
        { status: 502, body: "not json" },
        { _tag: "BrokerRequestError", status: 502 }
      ]
    ]
    for (const [answer, expected] of cases) {
      answers.set("POST /v1/grants/u/notes/token", answer)
      const error = await client.backgroundToken({ subject: "u", provider: "notes" }).catch((e: unknown) => e)
      expect(error).toMatchObject(expected)
    }
    answers.set("POST /v1/grants/u/notes/token", { status: 200, body: { accessToken: 1 } })
    expect(
      await client.backgroundToken({ subject: "u", provider: "notes" }).catch((e: unknown) => e)
    ).toMatchObject({
      code: "invalid_response"
    })
  })

  it("an unreachable broker is UpstreamUnavailable, through the remote TokenSource too", async () => {
    const source = layerRemote({
      url: "http://127.0.0.1:1",
      clientId: "app",
      clientSecret: "s",
      timeout: "2 seconds"
    })
    const error = await Effect.runPromise(
      Effect.flip(
        Effect.provide(
          Effect.flatMap(TokenSource.TokenSource, (s) =>
            s.backgroundToken({ subject: "u", provider: "notes" })
          ),
          source
        )
      )
    )
    expect(error).toMatchObject({ _tag: "UpstreamUnavailable", reason: "network", provider: "notes" })
  })

  it("the remote TokenSource turns the broker's policy refusals into UpstreamRejected", async () => {
    answers.set("GET /v1/grants/u/notes", problem(401, "unauthorized"))
    const source = layerRemote({ url, clientId: "app", clientSecret: "wrong" })
    const error = await Effect.runPromise(
      Effect.flip(
        Effect.provide(
          Effect.flatMap(TokenSource.TokenSource, (s) => s.grantStatus({ subject: "u", provider: "notes" })),
          source
        )
      )
    )
    expect(error).toMatchObject({ _tag: "UpstreamRejected", error: "invalid_client" })
  })

  it("reports a refused token: the grant after the report, or none (204)", async () => {
    const grant = {
      tenant: "default",
      subject: "u",
      provider: "notes",
      version: 4,
      status: "active",
      scopes: ["a"],
      identity: null,
      refreshTokenExpiresAt: null,
      accessTokenExpiresAt: null,
      createdAt: "2030-01-01T00:00:00.000Z",
      updatedAt: "2030-01-01T00:00:00.000Z",
      lastRefreshedAt: null,
      failureCount: 1,
      lastErrorCode: "access_token_rejected"
    }
    answers.set("POST /v1/grants/u/notes/token/rejected", { status: 200, body: grant })
    const client = BrokerClient.make({ url, clientId: "app", clientSecret: "s" })
    const after = await client.reportRejected({
      subject: "u",
      provider: "notes",
      accessToken: Redacted.make("at-1")
    })
    expect(after?.lastErrorCode).toBe("access_token_rejected")
    expect(JSON.parse(seen[seen.length - 1]?.body ?? "{}")).toEqual({ accessToken: "at-1" })
    answers.set("POST /v1/grants/u/notes/token/rejected", { status: 204, body: "" })
    expect(
      await client.reportRejected({ subject: "u", provider: "notes", accessToken: Redacted.make("at-2") })
    ).toBeUndefined()
  })
})
