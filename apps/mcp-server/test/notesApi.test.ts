import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"
import { Redacted } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { makeNotesApi } from "../src/internal/notesApi.js"

// Transport faults of the notes API client, against a server that misbehaves on purpose: a connection
// closed before any answer (what a pooled connection looks like after the server gave up on it) and a
// body refused as too large. The answers themselves are tested against dev-idp's notes API in the e2e tests.
const NOTE = {
  id: 7,
  etag: "e7",
  readonly: false,
  title: "t",
  content: "c",
  category: "",
  favorite: false,
  modified: 1_700_000_000
}

let server: Server
let baseUrl: string
const seen: Array<string> = []
/** How many of the next requests the server drops without an answer. */
let dropNext = 0
/** Requests for note 8 are never answered (until the suite ends). */
const hanging: Array<ServerResponse> = []

beforeAll(async () => {
  server = createServer((req: IncomingMessage, res: ServerResponse) => {
    seen.push(`${req.method} ${req.url}`)
    req.resume()
    req.on("end", () => {
      if (dropNext > 0) {
        dropNext -= 1
        req.socket.destroy()
        return
      }
      if (req.url === "/notes/8") {
        hanging.push(res)
        return
      }
      if (req.url === "/notes/413") {
        res.writeHead(413, { "content-type": "text/plain" }).end("too large")
        return
      }
      res.writeHead(200, { "content-type": "application/json" })
      res.end(JSON.stringify(req.method === "GET" && req.url?.startsWith("/notes?") === true ? [NOTE] : NOTE))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})
afterAll(async () => {
  for (const res of hanging) res.destroy()
  await new Promise<void>((resolve) => server.close(() => resolve()))
})

const token = Redacted.make("not-a-real-token")

describe("the notes API client under transport faults", () => {
  it("a read whose connection closed before any answer is sent once more, and succeeds", async () => {
    seen.length = 0
    dropNext = 1
    const api = makeNotesApi({ baseUrl })
    const list = await api.list(token, {})
    expect(list.map((note) => note.id)).toEqual([7])
    expect(seen).toEqual(["GET /notes?exclude=content", "GET /notes?exclude=content"])
  })

  it("a read is sent at most twice: a server that keeps dropping it is 'could not be reached'", async () => {
    seen.length = 0
    dropNext = 2
    await expect(makeNotesApi({ baseUrl }).get(token, 7)).rejects.toMatchObject({
      reason: "unavailable",
      message: "The notes API could not be reached"
    })
    expect(seen).toEqual(["GET /notes/7", "GET /notes/7"])
  })

  it("a write is never repeated: its connection closing is an error at once", async () => {
    seen.length = 0
    dropNext = 1
    await expect(makeNotesApi({ baseUrl }).create(token, { content: "x" })).rejects.toMatchObject({
      reason: "unavailable",
      message: "The notes API could not be reached"
    })
    expect(seen).toEqual(["POST /notes"])
  })

  it("a request that gets no answer in time is 'did not answer', and is not sent again", async () => {
    seen.length = 0
    await expect(makeNotesApi({ baseUrl, timeoutMs: 100 }).get(token, 8)).rejects.toMatchObject({
      reason: "unavailable",
      message: "The notes API did not answer within 0.1 s"
    })
    expect(seen).toEqual(["GET /notes/8"])
  })

  it("413 is a clear error that says the note is too large", async () => {
    await expect(
      makeNotesApi({ baseUrl }).update(token, 413, { content: "x" }, undefined)
    ).rejects.toMatchObject({
      status: 413,
      reason: "rejected",
      message: "The notes API refused the note as too large: shorten its content"
    })
  })
})
