import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { CALLERS, call, type Stack, startStack } from "./support/stack.js"

// The wording of a 400 for a request that fails its route's schema: core's one zod formatter (the field in
// `scopes[0]` form, what is wrong, how many other problems), the part of the request as the root.
describe("a request that fails its route's schema", () => {
  let stack: Stack
  beforeAll(async () => {
    stack = await startStack({ backend: "memory" })
  })
  afterAll(() => stack.stop())

  // what is sent, and the problem's field and detail
  const cases: ReadonlyArray<readonly [string, string, string, unknown, string, string]> = [
    [
      "an unknown body field, by the part it is in",
      "POST",
      "/v1/grants/u-bob/notes/token",
      { scopez: ["notes:read"] },
      "body",
      'body: unknown key "scopez"'
    ],
    [
      "a field of the wrong type, with the type expected",
      "POST",
      "/v1/grants/u-bob/notes/token",
      { scopes: "notes:read" },
      "scopes",
      "scopes: expected array, received string"
    ],
    [
      "an item of a list, by its index, counting the other problems",
      "POST",
      "/v1/grants/u-bob/notes/token",
      { scopes: [7, "a b"] },
      "scopes[0]",
      "scopes[0]: expected string, received number (and 1 more problem)"
    ],
    [
      "a query parameter, in its own rule's words",
      "GET",
      "/v1/grants?limit=0",
      undefined,
      "limit",
      "limit: limit is a whole number from 1 to 1000"
    ],
    [
      "a path parameter, in its own rule's words",
      "GET",
      "/v1/grants/u-bob/no%20such",
      undefined,
      "provider",
      "provider: a provider id is 1-64 characters of A-Z a-z 0-9 . _ -"
    ],
    [
      "an unknown query parameter, by the query",
      "GET",
      "/v1/grants?limt=5",
      undefined,
      "query",
      'query: unknown key "limt"'
    ]
  ]

  it.each(cases)("names %s", async (_what, method, path, json, field, detail) => {
    const answer = await call(stack, method, path, { caller: CALLERS.agent, json })
    expect(answer.status).toBe(400)
    expect(answer.headers.get("content-type")).toContain("application/problem+json")
    expect(answer.body).toMatchObject({ code: "invalid_request", field, detail })
  })
})
