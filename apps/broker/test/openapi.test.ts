import { Validator } from "@seriousme/openapi-schema-validator"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Stack, startStack } from "./support/stack.js"

/**
 * The OpenAPI document is generated from the routes' zod schemas: it must be a valid OpenAPI 3.1
 * document (checked against the specification's own JSON schemas), list every route with what it
 * takes and answers, and the check must catch a broken one.
 */
type Document = {
  openapi: string
  info: unknown
  paths: Record<string, Record<string, Operation>>
  components: { schemas: Record<string, unknown> }
}
type Operation = {
  summary?: string
  parameters?: Array<{ name: string; in: string; required?: boolean }>
  requestBody?: {
    required: boolean
    content: Record<string, { schema: { properties?: Record<string, unknown> } }>
  }
  responses: Record<string, { description: string; content?: Record<string, unknown> }>
  security?: Array<unknown>
}

const validate = async (document: unknown) => {
  const validator = new Validator()
  const result = await validator.validate(structuredClone(document) as Parameters<Validator["validate"]>[0])
  return { ...result, version: validator.version }
}

let stack: Stack
let document: Document

beforeAll(async () => {
  stack = await startStack({ backend: "sqlite" })
  const response = await fetch(`${stack.url}/openapi.json`)
  expect(response.headers.get("content-type")).toContain("application/json")
  document = (await response.json()) as Document
})
afterAll(async () => {
  await stack?.stop()
})

describe("the generated OpenAPI document", () => {
  it("is valid OpenAPI 3.1", async () => {
    const result = await validate(document)
    expect(result.errors ?? []).toEqual([])
    expect(result.valid).toBe(true)
    expect(result.version).toBe("3.1")
  })

  it("fails the validator once corrupted (the check above can fail)", async () => {
    const { info: _info, ...withoutInfo } = document
    expect((await validate(withoutInfo)).valid).toBe(false)
    const badStatus = structuredClone(document)
    const token = badStatus.paths["/v1/grants/{subject}/{provider}/token"]?.post
    if (token === undefined) throw new Error("the background-token route is missing")
    token.responses.twoHundred = { description: "not a status code" }
    expect((await validate(badStatus)).valid).toBe(false)
    const badParameter = structuredClone(document)
    const status = badParameter.paths["/v1/grants/{subject}/{provider}"]?.get
    if (status?.parameters?.[0] === undefined) throw new Error("the grant route has no parameters")
    status.parameters[0].in = "body"
    expect((await validate(badParameter)).valid).toBe(false)
  })

  it("lists every route, with its parameters, body and answers from the routes' schemas", () => {
    const operations = Object.entries(document.paths).flatMap(([path, methods]) =>
      Object.keys(methods).map((method) => `${method.toUpperCase()} ${path}`)
    )
    expect(operations.sort()).toEqual(
      [
        "POST /oauth/token",
        "POST /v1/grants/{subject}/{provider}/token",
        "POST /v1/grants/{subject}/{provider}/token/rejected",
        "GET /v1/grants",
        "GET /v1/grants/{subject}/{provider}",
        "DELETE /v1/grants/{subject}/{provider}",
        "POST /v1/grants/{subject}/{provider}/authorize",
        "GET /connect/callback",
        "GET /healthz",
        "GET /readyz",
        "GET /metrics",
        "GET /openapi.json"
      ].sort()
    )
    const token = document.paths["/v1/grants/{subject}/{provider}/token"]?.post
    expect(token?.parameters?.map((p) => [p.name, p.in, p.required])).toEqual([
      ["subject", "path", true],
      ["provider", "path", true]
    ])
    expect(Object.keys(token?.requestBody?.content["application/json"]?.schema.properties ?? {})).toEqual([
      "scopes",
      "minTtl"
    ])
    expect(Object.keys(token?.responses ?? {})).toEqual(
      expect.arrayContaining(["200", "400", "401", "403", "404", "409", "429", "503"])
    )
    // the body may be left out there, not when reporting a refused token
    expect(token?.requestBody?.required).toBe(false)
    expect(
      document.paths["/v1/grants/{subject}/{provider}/token/rejected"]?.post?.requestBody?.required
    ).toBe(true)
    expect(token?.responses["409"]?.content).toHaveProperty("application/problem+json")
    const exchange = document.paths["/oauth/token"]?.post
    const form = exchange?.requestBody?.content["application/x-www-form-urlencoded"]?.schema
    expect(Object.keys(form?.properties ?? {})).toEqual(
      expect.arrayContaining(["grant_type", "subject_token", "subject_token_type", "audience", "client_id"])
    )
    const list = document.paths["/v1/grants"]?.get
    expect(list?.parameters?.map((p) => `${p.in}:${p.name}`)).toEqual(
      expect.arrayContaining([
        "query:subject",
        "query:provider",
        "query:status",
        "query:limit",
        "query:cursor"
      ])
    )
    expect(document.paths["/healthz"]?.get?.security).toEqual([])
    expect(document.components.schemas).toHaveProperty("Problem")
  })

  it("is the document Swagger UI shows", async () => {
    const shown = await (await fetch(`${stack.url}/docs/json`)).json()
    expect(shown).toEqual(document)
  })
})
