import fc from "fast-check"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { basic, CALLERS, type Stack, startStack } from "./support/stack.js"

/**
 * Bad input never yields a 5xx or a crash: malformed bodies, wrong content types, huge values and odd
 * encodings at every route get a 4xx (or a 2xx where the input happens to be valid) with a clear message.
 */

let stack: Stack
beforeAll(async () => {
  stack = await startStack({ backend: "memory", rateLimit: { max: 100_000, timeWindow: "1 minute" } })
})
afterAll(async () => {
  await stack?.stop()
})

const oddText = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: "grapheme", maxLength: 40 }),
  fc.string({ unit: "binary", maxLength: 40 }),
  fc.constantFrom(
    "",
    " ",
    "..",
    "%",
    "%zz",
    "%00",
    "%2F",
    "%C0%AF",
    "%FF%FE",
    "\u0000",
    "a/b",
    "*",
    "__proto__",
    "constructor"
  ),
  fc.integer({ min: 300, max: 5000 }).map((n) => "x".repeat(n))
)

/** A path segment as it may arrive: encoded, raw, or with broken percent-encoding. */
const segment = fc.oneof(
  oddText.map((t) => encodeURIComponent(t)),
  fc.constantFrom("u-alice", "notes", "other", "%zz", "%", "%E0%A4%A", "a%00b", "..%2F..")
)

const query = fc
  .array(
    fc.tuple(
      fc.constantFrom("subject", "provider", "status", "limit", "cursor", "state", "code", "x"),
      oddText
    ),
    {
      maxLength: 4
    }
  )
  .map((pairs) => pairs.map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join("&"))

const route = fc.oneof(
  fc.constant({ method: "POST", path: "/oauth/token" }),
  fc.tuple(segment, segment).map(([s, p]) => ({ method: "POST", path: `/v1/grants/${s}/${p}/token` })),
  fc.tuple(segment, segment).map(([s, p]) => ({ method: "POST", path: `/v1/grants/${s}/${p}/authorize` })),
  fc
    .tuple(segment, segment, fc.constantFrom("GET", "DELETE"))
    .map(([s, p, m]) => ({ method: m, path: `/v1/grants/${s}/${p}` })),
  query.map((q) => ({ method: "GET", path: `/v1/grants?${q}` })),
  query.map((q) => ({ method: "GET", path: `/connect/callback?${q}` })),
  fc.constantFrom(
    { method: "GET", path: "/healthz" },
    { method: "GET", path: "/openapi.json" },
    { method: "PUT", path: "/v1/grants" },
    { method: "POST", path: "/v1/grants/%zz/notes/token" },
    { method: "GET", path: "/nowhere/%" }
  )
)

const contentType = fc.option(
  fc.constantFrom(
    "application/json",
    "application/json; charset=utf-8",
    "application/json; charset=latin1",
    "application/x-www-form-urlencoded",
    "text/plain",
    "multipart/form-data; boundary=x",
    "application/xml",
    "garbage",
    "application/problem+json"
  ),
  { nil: undefined }
)

const body = fc.option(
  fc.oneof(
    fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
    fc
      .record(
        {
          scopes: fc.oneof(fc.array(oddText, { maxLength: 60 }), oddText, fc.integer()),
          minTtl: fc.oneof(fc.integer(), fc.double(), oddText, fc.constant(null)),
          returnTo: oddText,
          extra: oddText
        },
        { requiredKeys: [] }
      )
      .map((v) => JSON.stringify(v)),
    fc
      .array(
        fc.tuple(
          fc.constantFrom(
            "grant_type",
            "subject_token",
            "subject_token_type",
            "audience",
            "resource",
            "scope",
            "client_id",
            "client_secret",
            "z"
          ),
          oddText
        ),
        {
          maxLength: 8
        }
      )
      .map((pairs) => pairs.map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join("&")),
    oddText,
    fc.constantFrom(
      '{"a":',
      "{}",
      "[]",
      "null",
      '{"__proto__":{"x":1}}',
      '{"constructor":{"prototype":{}}}',
      "\u0000\u0001",
      "%%%"
    ),
    fc.integer({ min: 60_000, max: 200_000 }).map((n) => `{"scopes":["${"s".repeat(n)}"]}`)
  ),
  { nil: undefined }
)

const auth = fc.constantFrom<string | undefined>(
  undefined,
  basic(CALLERS.agent),
  basic(CALLERS.narrow),
  "Basic !!!",
  "Basic Og==",
  "Bearer abc",
  `Basic ${Buffer.from("agent:%zz").toString("base64")}`
)

describe("bad input at every route", () => {
  it("answers 4xx (or 2xx) with a clear message, never 5xx", async () => {
    const seen = new Map<number, number>()
    await fc.assert(
      fc.asyncProperty(route, contentType, body, auth, async (r, type, payload, authorization) => {
        const headers: Record<string, string> = {}
        if (type !== undefined) headers["content-type"] = type
        if (authorization !== undefined) headers.authorization = authorization
        const hasBody = payload !== undefined && r.method !== "GET"
        const response = await fetch(`${stack.url}${r.path}`, {
          method: r.method,
          headers,
          ...(hasBody ? { body: payload } : {})
        })
        const text = await response.text()
        seen.set(response.status, (seen.get(response.status) ?? 0) + 1)
        expect(
          response.status,
          `${r.method} ${r.path.slice(0, 80)} answered ${response.status}: ${text.slice(0, 200)}`
        ).toBeLessThan(500)
        if (response.status >= 400 && response.status !== 431) {
          const kind = response.headers.get("content-type") ?? ""
          if (kind.includes("json")) {
            const json = JSON.parse(text) as Record<string, unknown>
            const message = json.detail ?? json.error_description
            expect(
              typeof message === "string" && message.length > 5,
              `no clear message in ${text.slice(0, 200)}`
            ).toBe(true)
          } else {
            expect(kind).toContain("text/html")
            expect(text.length).toBeGreaterThan(50)
          }
        }
      }),
      { numRuns: 400 }
    )
    // the inputs reached every kind of refusal, not just one early exit
    for (const status of [400, 401, 404, 413, 415])
      expect(seen.get(status) ?? 0, `status ${status} never seen: ${[...seen]}`).toBeGreaterThan(0)
    // the server is still answering
    expect((await fetch(`${stack.url}/healthz`)).status).toBe(200)
  }, 120_000)
})
