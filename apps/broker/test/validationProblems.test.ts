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

  const refusal = async (method: string, path: string, json?: unknown) => {
    const answer = await call(stack, method, path, { caller: CALLERS.agent, json })
    expect(answer.status).toBe(400)
    expect(answer.headers.get("content-type")).toContain("application/problem+json")
    expect(answer.body.code).toBe("invalid_request")
    return { field: answer.body.field, detail: answer.body.detail }
  }

  it("names an unknown body field by the part it is in", async () => {
    expect(await refusal("POST", "/v1/grants/u-bob/notes/token", { scopez: ["notes:read"] })).toEqual({
      field: "body",
      detail: 'body: unknown key "scopez"'
    })
  })

  it("names a field of the wrong type with the type expected", async () => {
    expect(await refusal("POST", "/v1/grants/u-bob/notes/token", { scopes: "notes:read" })).toEqual({
      field: "scopes",
      detail: "scopes: expected array, received string"
    })
  })

  it("names an item of a list by its index, and counts the other problems", async () => {
    expect(await refusal("POST", "/v1/grants/u-bob/notes/token", { scopes: [7, "a b"] })).toEqual({
      field: "scopes[0]",
      detail: "scopes[0]: expected string, received number (and 1 more problem)"
    })
  })

  it("words a query parameter's own rule, and a path parameter's", async () => {
    expect(await refusal("GET", "/v1/grants?limit=0")).toEqual({
      field: "limit",
      detail: "limit: limit is a whole number from 1 to 1000"
    })
    expect(await refusal("GET", "/v1/grants/u-bob/no%20such")).toEqual({
      field: "provider",
      detail: "provider: a provider id is 1-64 characters of A-Z a-z 0-9 . _ -"
    })
  })

  it("names an unknown query parameter by the query", async () => {
    expect(await refusal("GET", "/v1/grants?limt=5")).toEqual({
      field: "query",
      detail: 'query: unknown key "limt"'
    })
  })
})
