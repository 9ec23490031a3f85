import { describe, expect, it } from "vitest"
import { z } from "zod"
import {
  firstZodProblem,
  formatZodIssues,
  parseGrantRecord,
  ZodIssues,
  zodIssueMessage
} from "../src/index.js"

const issuesOf = (schema: z.ZodType, input: unknown): z.ZodError => {
  const result = schema.safeParse(input)
  if (result.success) throw new Error("expected the input to be refused")
  return result.error
}

const provider = z.object({ id: z.string(), issuer: z.string() }).strict()
const config = z.object({ providers: z.array(provider) }).strict()

const store = z.union([
  z.object({ kind: z.literal("sqlite"), file: z.string() }).strict(),
  z.object({ kind: z.literal("postgres"), connection: z.object({ url: z.string() }) }).strict()
])

describe("ZodIssues", () => {
  it("names the field in providers[0].issuer form and says a missing field is required", () => {
    const error = issuesOf(config, { providers: [{ id: "a" }] })
    expect(formatZodIssues(error)).toBe("providers[0].issuer: is required (expected string)")
  })

  it("says what a wrong type is without calling it missing", () => {
    const error = issuesOf(config, { providers: [{ id: "a", issuer: 42 }] })
    expect(formatZodIssues(error)).toBe("providers[0].issuer: expected string, received number")
  })

  it("lists unknown keys, at most 64 characters of each, and never a value", () => {
    const long = "k".repeat(100)
    const error = issuesOf(config, { providers: [], [long]: "secret-value-1234" })
    const message = formatZodIssues(error)
    expect(message).toBe(`(root): unknown key "${"k".repeat(64)}"`)
    expect(message).not.toContain("secret-value")
    expect(zodIssueMessage(issuesOf(provider, { id: "a", issuer: "b", x: 1, y: 2 }).issues[0]!)).toBe(
      'unknown keys "x", "y"'
    )
  })

  it("takes the deepest branch of a union instead of zod's bare 'Invalid input'", () => {
    const error = issuesOf(store, { kind: "postgres", connection: {} })
    const problem = firstZodProblem(error)
    expect(problem?.field).toBe("connection.url")
    expect(problem?.issue.code).toBe("invalid_type")
    expect(formatZodIssues(error)).toBe("connection.url: is required (expected string)")
  })

  it("keeps a union's own message: it names the fix", () => {
    const custom = z.union([z.string(), z.number()], { error: "give a name or a number" })
    expect(formatZodIssues(issuesOf(z.object({ v: custom }), { v: true }))).toBe("v: give a name or a number")
  })

  it("counts the other problems", () => {
    const error = issuesOf(config, { providers: [{}, {}] })
    const problem = firstZodProblem(error)
    expect(problem?.others).toBe(3)
    expect(formatZodIssues(error)).toBe(
      "providers[0].id: is required (expected string) (and 3 more problems)"
    )
    expect(formatZodIssues(issuesOf(config, { providers: [{ id: "a" }, { id: "b" }] }))).toBe(
      "providers[0].issuer: is required (expected string) (and 1 more problem)"
    )
  })

  it("names the root as asked, and answers for an error without issues", () => {
    expect(formatZodIssues(issuesOf(z.string(), 1), { root: "record" })).toBe(
      "record: expected string, received number"
    )
    expect(formatZodIssues([], { root: "body" })).toBe("body: invalid")
    expect(firstZodProblem([])).toBeUndefined()
    expect(ZodIssues.fieldOf([])).toBe("(root)")
    expect(ZodIssues.fieldOf(["a", 0, 1, "b"])).toBe("a[0][1].b")
  })

  it("is what a malformed stored grant reports", () => {
    const parsed = parseGrantRecord({ tenant: "t" })
    expect(parsed.ok).toBe(false)
    if (!parsed.ok)
      expect(parsed.problem).toMatch(/^subject: is required \(expected string\) \(and \d+ more problems\)$/)
  })
})
