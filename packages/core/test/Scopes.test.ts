import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { isProviderId, ProviderId, Scopes } from "../src/index.js"

describe("Scopes", () => {
  it("splits a scope string into a sorted list without duplicates or empty entries, and joins it back", () => {
    expect(Scopes.split("b a  a ")).toEqual(["a", "b"])
    expect(Scopes.split("")).toEqual([])
    expect(Scopes.splitOptional(undefined)).toBeNull()
    expect(Scopes.join(Scopes.split("notes.write notes.read"))).toBe("notes.read notes.write")
  })

  it("compares normalized lists and checks subsets", () => {
    expect(Scopes.same(["a", "b"], Scopes.normalize(["b", "a"]))).toBe(true)
    expect(Scopes.same(["a"], ["a", "b"])).toBe(false)
    expect(Scopes.isSubset(["a"], ["a", "b"])).toBe(true)
    expect(Scopes.isSubset(["c"], ["a", "b"])).toBe(false)
  })

  it.effect("refuses a token outside RFC 6749 3.3 and an empty requested list, naming the field", () =>
    Effect.gen(function* () {
      expect(yield* Scopes.validate(["b", "a", "b"], "scopes")).toEqual(["a", "b"])
      const bad = yield* Effect.flip(Scopes.validate(['no"quote'], "scopes"))
      expect([bad._tag, bad.field]).toEqual(["InvalidRequest", "scopes"])
      const empty = yield* Effect.flip(Scopes.requested([], "scope"))
      expect([empty._tag, empty.field]).toEqual(["InvalidRequest", "scope"])
    })
  )
})

describe("ProviderId", () => {
  it("accepts 1-64 characters of [A-Za-z0-9._-] and nothing else", () => {
    expect(isProviderId("next-cloud_1.x")).toBe(true)
    expect(isProviderId("a".repeat(64))).toBe(true)
    expect(isProviderId("a".repeat(65))).toBe(false)
    expect(isProviderId("")).toBe(false)
    expect(isProviderId("a/b")).toBe(false)
    expect(ProviderId.safeParse("gh").success).toBe(true)
    expect(ProviderId.safeParse("g h").success).toBe(false)
  })
})
