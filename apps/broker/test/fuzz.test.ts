import fc from "fast-check"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  ACCESS_TOKEN_TYPE,
  basic,
  CALLERS,
  connectOverHttp,
  type Stack,
  startStack,
  TOKEN_EXCHANGE,
  userToken
} from "./support/stack.js"

/**
 * Every route, fed well-formed requests built around a real grant (alice consented through dev-idp)
 * and a real subject token (alice's, from dev-idp), and malformed ones (odd bodies, content types,
 * encodings, huge values). Oracles: never a 5xx; a 4xx carries a clear message; no request without
 * valid caller credentials gets a 2xx from a caller route; and the requests with valid credentials
 * reached deep: 200, 403 (policy) and 409 (consent required) all among their answers.
 */

const SCOPES = ["notes:read", "notes:write", "openid", "offline_access", "x"]
/**
 * Stands for the real subject token in generated requests (URL-safe, so form encoding keeps it), replaced
 * as a request is sent: a failing property prints its counterexample, which must hold no token (nor a
 * caller secret: see `Credentials`).
 */
const SUBJECT_TOKEN = "subject-token-of-alice"

let stack: Stack
/** The seeds: alice has a grant, bob has none; alice's own (Flow 1) token for the MCP audience. */
let seed: { readonly alice: string; readonly bob: string; readonly subjectToken: string }
beforeAll(async () => {
  stack = await startStack({
    backend: "memory",
    rateLimit: { max: 100_000, timeWindow: "1 minute" },
    // every bad credential reaches its check (scrypt) rather than the per-address limit's 429
    server: { callerAuthentication: { maxFailures: 100_000, failureWindow: "1 minute" } }
  })
  const consent = await connectOverHttp(stack, 0)
  if (consent.status !== 200) throw new Error(`seeding alice's grant answered ${consent.status}`)
  seed = {
    alice: consent.user.sub,
    bob: stack.idp.users[1]?.sub ?? "",
    subjectToken: await userToken(stack.idp, 0)
  }
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
const oddSegment = fc.oneof(
  oddText.map((t) => encodeURIComponent(t)),
  fc.constantFrom("%zz", "%", "%E0%A4%A", "a%00b", "..%2F..", "u-alice%00", "notes%2F..")
)

const query = fc
  .array(
    fc.tuple(
      fc.constantFrom("subject", "provider", "status", "limit", "cursor", "state", "code", "error", "x"),
      oddText
    ),
    { maxLength: 4 }
  )
  .map((pairs) => pairs.map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join("&"))

const form = (pairs: ReadonlyArray<readonly [string, string]>) =>
  pairs.map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join("&")

interface Request {
  readonly method: string
  readonly path: string
  readonly contentType?: string | undefined
  readonly body?: string | undefined
  /** Open to anyone (health, docs, the browser's consent callback): not held to the credentials oracle. */
  readonly open?: boolean
}

/** Requests shaped as a client would send them, around the seeds. */
const wellFormed = (): fc.Arbitrary<Request> => {
  // bob (no grant) a little more often than alice: both consent-required (409) and success (200) are common
  const subject = fc.oneof(
    { arbitrary: fc.constant(seed.alice), weight: 2 },
    { arbitrary: fc.constant(seed.bob), weight: 3 },
    { arbitrary: oddSegment, weight: 1 }
  )
  const provider = fc.oneof(
    { arbitrary: fc.constantFrom("notes", "other"), weight: 4 },
    { arbitrary: oddSegment, weight: 1 }
  )
  const json = (value: fc.Arbitrary<unknown>) =>
    fc.tuple(value, fc.constantFrom("application/json", "application/json; charset=utf-8"))
  // mostly scopes the provider knows, so that policy and the grant decide rather than validation
  const scopes = fc.oneof(
    { arbitrary: fc.subarray(["notes:read", "notes:write"], { minLength: 1 }), weight: 4 },
    { arbitrary: fc.subarray(SCOPES), weight: 1 }
  )
  const tokenBody = fc.record(
    {
      scopes,
      // mostly within the tokens' lifetime; now and then beyond it (a 400 naming the provider's lifetime)
      minTtl: fc.oneof(
        { arbitrary: fc.integer({ min: 0, max: 60 }), weight: 4 },
        { arbitrary: fc.integer({ min: 300, max: 1_000_000 }), weight: 1 }
      )
    },
    { requiredKeys: [] }
  )
  const authorizeBody = fc.record(
    {
      scopes,
      returnTo: fc.constantFrom("http://app.example.test/done", "https://elsewhere.example/x", "/relative")
    },
    { requiredKeys: [] }
  )
  const exchangeForm = fc
    .record(
      {
        grant_type: fc.oneof(
          { arbitrary: fc.constant(TOKEN_EXCHANGE), weight: 4 },
          { arbitrary: fc.constantFrom("client_credentials", "refresh_token"), weight: 1 }
        ),
        subject_token: fc.oneof(
          { arbitrary: fc.constant(SUBJECT_TOKEN), weight: 4 },
          { arbitrary: fc.constantFrom("garbage", `${SUBJECT_TOKEN}x`), weight: 1 }
        ),
        subject_token_type: fc.oneof(
          { arbitrary: fc.constant(ACCESS_TOKEN_TYPE), weight: 4 },
          { arbitrary: fc.constant("urn:ietf:params:oauth:token-type:id_token"), weight: 1 }
        ),
        audience: fc.constantFrom("notes", "other", stack.idp.notesAudience, "https://unknown.example"),
        scope: fc.constantFrom("notes:read", "notes:write", "notes:read notes:write", "openid", "")
      },
      { requiredKeys: ["grant_type"] }
    )
    .map((fields) => form(Object.entries(fields)))
  return fc.oneof(
    {
      weight: 6,
      arbitrary: fc.tuple(subject, provider, json(tokenBody)).map(([s, p, [b, type]]) => ({
        method: "POST",
        path: `/v1/grants/${s}/${p}/token`,
        contentType: type,
        body: JSON.stringify(b)
      }))
    },
    {
      weight: 3,
      arbitrary: exchangeForm.map((body) => ({
        method: "POST",
        path: "/oauth/token",
        contentType: "application/x-www-form-urlencoded",
        body
      }))
    },
    {
      weight: 1,
      arbitrary: fc.tuple(subject, provider, json(authorizeBody)).map(([s, p, [b, type]]) => ({
        method: "POST",
        path: `/v1/grants/${s}/${p}/authorize`,
        contentType: type,
        body: JSON.stringify(b)
      }))
    },
    {
      weight: 1,
      arbitrary: fc
        .tuple(subject, provider)
        .map(([s, p]) => ({ method: "GET", path: `/v1/grants/${s}/${p}` }))
    },
    {
      // never alice's grant: the seed stays for the whole run
      weight: 1,
      arbitrary: fc
        .tuple(fc.oneof(fc.constant(seed.bob), oddSegment), provider)
        .map(([s, p]) => ({ method: "DELETE", path: `/v1/grants/${s}/${p}` }))
    },
    {
      weight: 1,
      arbitrary: fc
        .record(
          {
            subject: fc.constantFrom(seed.alice, seed.bob),
            provider: fc.constantFrom("notes", "other"),
            status: fc.constantFrom("active", "reconsent_required"),
            limit: fc.constantFrom("1", "10", "0")
          },
          { requiredKeys: [] }
        )
        .map((q) => ({ method: "GET", path: `/v1/grants?${form(Object.entries(q))}` }))
    }
  )
}

const malformedBody = fc.option(
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
        { maxLength: 8 }
      )
      .map(form),
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

/** Requests with odd paths, bodies, content types and encodings at every route. */
const malformed: fc.Arbitrary<Request> = fc
  .tuple(
    fc.oneof(
      fc.constant({ method: "POST", path: "/oauth/token" }),
      fc
        .tuple(oddSegment, oddSegment)
        .map(([s, p]) => ({ method: "POST", path: `/v1/grants/${s}/${p}/token` })),
      fc
        .tuple(oddSegment, oddSegment)
        .map(([s, p]) => ({ method: "POST", path: `/v1/grants/${s}/${p}/authorize` })),
      fc
        .tuple(oddSegment, oddSegment, fc.constantFrom("GET", "DELETE"))
        .map(([s, p, m]) => ({ method: m, path: `/v1/grants/${s}/${p}` })),
      query.map((q) => ({ method: "GET", path: `/v1/grants?${q}` })),
      query.map((q) => ({ method: "GET", path: `/connect/callback?${q}`, open: true })),
      fc.constantFrom(
        { method: "GET", path: "/healthz", open: true },
        { method: "GET", path: "/openapi.json", open: true },
        { method: "PUT", path: "/v1/grants" },
        { method: "POST", path: "/v1/grants/%zz/notes/token" },
        { method: "GET", path: "/nowhere/%" }
      )
    ),
    fc.option(
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
    ),
    malformedBody
  )
  .map(([route, contentType, body]) => ({ ...route, contentType, body }))

/** Who a request claims to be; the Authorization header is built from it as the request is sent. */
interface Credentials {
  readonly name: string
  /** A registered caller with its own secret, sent as client_secret_basic. */
  readonly valid: boolean
}

const HEADERS: Record<string, () => string | undefined> = {
  agent: () => basic(CALLERS.agent),
  narrow: () => basic(CALLERS.narrow),
  reader: () => basic(CALLERS.reader),
  steward: () => basic(CALLERS.steward),
  bound: () => basic(CALLERS.bound),
  none: () => undefined,
  "agent with a wrong secret": () => basic({ id: CALLERS.agent.id, secret: "not-the-secret" }),
  "narrow with agent's secret": () => basic({ id: CALLERS.narrow.id, secret: CALLERS.agent.secret }),
  "an unknown id with agent's secret": () => basic({ id: "nobody", secret: CALLERS.agent.secret }),
  "the subject token as a bearer": () => `Bearer ${seed.subjectToken}`,
  "Basic !!!": () => "Basic !!!",
  "Basic Og==": () => "Basic Og==",
  "Bearer abc": () => "Bearer abc",
  "agent:%zz": () => `Basic ${Buffer.from("agent:%zz").toString("base64")}`,
  "agent's secret without an id": () => `Basic ${Buffer.from(CALLERS.agent.secret).toString("base64")}`
}
/** Weighted: agent (every policy allows it) most, the narrower callers for 403s. */
const VALID = ["agent", "agent", "agent", "narrow", "narrow", "reader", "steward", "bound"]

const credentials: fc.Arbitrary<Credentials> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...VALID).map((name) => ({ name, valid: true })) },
  {
    weight: 2,
    arbitrary: fc
      .constantFrom(...Object.keys(HEADERS).filter((name) => !VALID.includes(name)))
      .map((name) => ({ name, valid: false }))
  }
)

describe("every route, fed seeded and malformed requests", () => {
  it("never answers 5xx, explains every 4xx, gives no 2xx without credentials, and reaches 200, 403 and 409", async () => {
    const withCredentials = new Map<number, number>()
    const withoutCredentials = new Map<number, number>()
    const count = (seen: Map<number, number>, status: number) => seen.set(status, (seen.get(status) ?? 0) + 1)
    const request = fc.oneof({ weight: 3, arbitrary: wellFormed() }, { weight: 1, arbitrary: malformed })
    const agent = { name: "agent", valid: true }
    const token = { method: "POST", path: `/v1/grants/${seed.alice}/notes/token` }
    await fc.assert(
      fc.asyncProperty(request, credentials, async (r, auth) => {
        const headers: Record<string, string> = {}
        if (r.contentType !== undefined) headers["content-type"] = r.contentType
        const authorization = HEADERS[auth.name]?.()
        if (authorization !== undefined) headers.authorization = authorization
        const body = r.body?.replaceAll(SUBJECT_TOKEN, seed.subjectToken)
        const hasBody = body !== undefined && r.method !== "GET"
        const response = await fetch(`${stack.url}${r.path}`, {
          method: r.method,
          headers,
          ...(hasBody ? { body } : {})
        })
        const text = await response.text()
        // a 2xx body may hold a token: a failure message shows refusals only
        const shown = response.status >= 300 ? text.slice(0, 200) : "(body not shown)"
        const what = `${r.method} ${r.path.slice(0, 80)} as ${auth.name} answered ${response.status}: ${shown}`
        count(auth.valid ? withCredentials : withoutCredentials, response.status)
        expect(response.status, what).toBeLessThan(500)
        if (!auth.valid && r.open !== true) {
          expect(response.status >= 200 && response.status < 300, `without credentials: ${what}`).toBe(false)
        }
        if (response.status >= 400 && response.status !== 431) {
          const kind = response.headers.get("content-type") ?? ""
          if (kind.includes("json")) {
            const json = JSON.parse(text) as Record<string, unknown>
            const message = json.detail ?? json.error_description
            expect(typeof message === "string" && message.length > 5, `no clear message in ${what}`).toBe(
              true
            )
          } else {
            expect(kind).toContain("text/html")
            expect(text.length).toBeGreaterThan(50)
          }
        }
      }),
      {
        numRuns: 350,
        // the body limits, every run (random bodies reach them only now and then)
        examples: [
          [
            { ...token, contentType: "application/json", body: `{"scopes":["${"s".repeat(300_000)}"]}` },
            agent
          ],
          [{ ...token, contentType: "text/plain", body: "scopes=notes:read" }, agent]
        ]
      }
    )
    const statuses = (seen: Map<number, number>) => [...seen.keys()].sort((a, b) => a - b)
    const seen = `with credentials ${[...withCredentials]}; without ${[...withoutCredentials]}`
    // the requests with valid credentials got past authentication into policy, consent and success
    expect(statuses(withCredentials), seen).toEqual(expect.arrayContaining([200, 400, 403, 404, 409]))
    // and the others met every kind of refusal, not just one early exit
    expect(statuses(withoutCredentials), seen).toEqual(expect.arrayContaining([400, 401]))
    expect(statuses(new Map([...withCredentials, ...withoutCredentials])), seen).toEqual(
      expect.arrayContaining([413, 415])
    )
    // the seed is still there, and the server still answering
    expect((await fetch(`${stack.url}/healthz`)).status).toBe(200)
  })
})
