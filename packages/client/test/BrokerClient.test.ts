import { createServer, type Server, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"
import { TokenSource } from "@token-broker/core"
import { Duration, Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { BrokerClient, layerRemote } from "../src/index.js"

/**
 * Transport faults only: what no real broker answers, but a network, a proxy or a dying process does
 * (connection refused or reset, a body that is not the broker's JSON, no answer at all). This stand-in
 * server exists for those alone. Every answer the broker itself gives - each problem code, the 403
 * reasons, Retry-After, the token endpoint's RFC 6749 errors - is tested against the real broker in
 * apps/broker/test/client.test.ts.
 */
type Fault = (res: ServerResponse) => void

let server: Server
let url: string
const faults = new Map<string, Fault>()

beforeAll(async () => {
  server = createServer((req, res) => {
    req.resume()
    req.on("end", () => {
      const fault = faults.get((req.url ?? "").split("?")[0] ?? "")
      if (fault === undefined) {
        res.writeHead(500).end()
        return
      }
      fault(res)
    })
  })
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done))
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})
afterAll(async () => {
  server.closeAllConnections()
  await new Promise<void>((done) => server.close(() => done()))
})

const SECRET = "s3cret-never-in-an-error"
const client = (base = url, timeout: Duration.DurationInput = "10 seconds") =>
  BrokerClient.make({ url: base, clientId: "app", clientSecret: SECRET, timeout })

const failureOf = (promise: Promise<unknown>) =>
  promise.then(
    (value) => {
      throw new Error(`expected a failure, got ${JSON.stringify(value)}`)
    },
    (error: unknown) => error
  )

const remoteFailure = (base: string, timeout: Duration.DurationInput = "10 seconds") =>
  Effect.runPromise(
    Effect.flip(
      Effect.provide(
        Effect.flatMap(TokenSource.TokenSource, (s) =>
          s.backgroundToken({ subject: "u", provider: "notes" })
        ),
        layerRemote({ url: base, clientId: "app", clientSecret: SECRET, timeout })
      )
    )
  )

const path = "/v1/grants/u/notes/token"

describe("BrokerClient under transport faults", () => {
  it("connection refused: UpstreamUnavailable network, through the remote TokenSource too", async () => {
    // port 1: nothing listens there (a privileged port this test never binds)
    const refused = "http://127.0.0.1:1"
    const error = await failureOf(client(refused).backgroundToken({ subject: "u", provider: "notes" }))
    expect(error).toMatchObject({ _tag: "UpstreamUnavailable", reason: "network", provider: "notes" })
    expect(JSON.stringify(error)).not.toContain(SECRET)
    expect(await remoteFailure(refused)).toMatchObject({ _tag: "UpstreamUnavailable", reason: "network" })
  })

  it("connection reset before an answer: UpstreamUnavailable network", async () => {
    faults.set(path, (res) => res.socket?.destroy())
    const error = await failureOf(client().backgroundToken({ subject: "u", provider: "notes" }))
    expect(error).toMatchObject({ _tag: "UpstreamUnavailable", reason: "network", provider: "notes" })
  })

  it("no answer at all: UpstreamUnavailable timeout after the client's own time budget", async () => {
    // never answers: only the client's timeout can end the request
    faults.set(path, () => undefined)
    const error = await failureOf(
      client(url, "200 millis").backgroundToken({ subject: "u", provider: "notes" })
    )
    expect(error).toMatchObject({ _tag: "UpstreamUnavailable", reason: "timeout", provider: "notes" })
    expect(await remoteFailure(url, "200 millis")).toMatchObject({
      _tag: "UpstreamUnavailable",
      reason: "timeout"
    })
  })

  it("a proxy's non-JSON error page: BrokerRequestError with the status, UpstreamUnavailable over the TokenSource", async () => {
    faults.set(path, (res) => res.writeHead(502, { "content-type": "text/html" }).end("<h1>Bad gateway</h1>"))
    const error = await failureOf(client().backgroundToken({ subject: "u", provider: "notes" }))
    expect(error).toMatchObject({ _tag: "BrokerRequestError", status: 502, code: "http_502" })
    expect(await remoteFailure(url)).toMatchObject({
      _tag: "UpstreamUnavailable",
      reason: "server_error",
      status: 502
    })
  })

  it("a 2xx body that is not the broker's view: BrokerRequestError invalid_response", async () => {
    for (const fault of [
      (res: ServerResponse) =>
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ accessToken: 1 })),
      (res: ServerResponse) => res.writeHead(200, { "content-type": "text/plain" }).end("ok"),
      (res: ServerResponse) => res.writeHead(200).end()
    ]) {
      faults.set(path, fault)
      const error = await failureOf(client().backgroundToken({ subject: "u", provider: "notes" }))
      expect(error).toMatchObject({ _tag: "BrokerRequestError", status: 200, code: "invalid_response" })
    }
  })
})

describe("BrokerClient over its own send", () => {
  it("sends what it would fetch through `send`, and reads its status, text and Retry-After", async () => {
    const sent: Array<BrokerClient.BrokerHttpRequest> = []
    const over = (answer: BrokerClient.BrokerHttpAnswer) =>
      BrokerClient.make({
        url: "http://broker.invalid/",
        clientId: "app",
        clientSecret: SECRET,
        send: async (request) => {
          sent.push(request)
          return answer
        }
      })
    const view = {
      accessToken: "at",
      tokenType: "Bearer",
      expiresAt: "2030-01-01T00:00:00.000Z",
      scopes: ["a"],
      source: "cache"
    }
    const issued = await over({
      status: 200,
      text: JSON.stringify(view),
      retryAfter: undefined
    }).backgroundToken({
      subject: "u",
      provider: "notes",
      scopes: ["a"]
    })
    expect(issued).toMatchObject({ tokenType: "Bearer", scopes: ["a"], source: "cache" })
    expect(sent[0]).toMatchObject({
      url: "http://broker.invalid/v1/grants/u/notes/token",
      method: "POST",
      headers: {
        authorization: `Basic ${Buffer.from(`app:${SECRET}`).toString("base64")}`,
        "content-type": "application/json"
      },
      body: JSON.stringify({ scopes: ["a"] })
    })
    expect(sent[0]?.signal.aborted).toBe(false)
    const limited = await failureOf(
      over({ status: 429, text: JSON.stringify({ code: "rate_limited" }), retryAfter: "7" }).backgroundToken({
        subject: "u",
        provider: "notes"
      })
    )
    expect(limited).toMatchObject({ _tag: "BrokerRequestError", status: 429, code: "rate_limited" })
    expect((limited as BrokerClient.BrokerRequestError).retryAfter).toEqual(Duration.seconds(7))
  })

  it("aborts `send`'s signal with a TimeoutError at its time budget: UpstreamUnavailable timeout", async () => {
    const error = await failureOf(
      BrokerClient.make({
        url,
        clientId: "app",
        clientSecret: SECRET,
        timeout: "50 millis",
        send: (request) =>
          new Promise((_resolve, reject) =>
            request.signal.addEventListener("abort", () => reject(request.signal.reason), { once: true })
          )
      }).backgroundToken({ subject: "u", provider: "notes" })
    )
    expect(error).toMatchObject({ _tag: "UpstreamUnavailable", reason: "timeout", provider: "notes" })
  })
})
