import { describe, expect, it } from "vitest"
import { requestedScopes } from "../src/internal/Broker.js"

describe("--scope values", () => {
  it("are split at spaces and across repeats", () => {
    expect(requestedScopes(["notes:read notes:write", "offline_access"])).toEqual([
      "notes:read",
      "notes:write",
      "offline_access"
    ])
  })

  it("are split at any whitespace, runs of it included (a value of several lines)", () => {
    expect(requestedScopes(["  notes:read\tnotes:write\n\noffline_access  "])).toEqual([
      "notes:read",
      "notes:write",
      "offline_access"
    ])
  })

  it("ask for each scope once, in core's order", () => {
    expect(requestedScopes(["notes:write notes:read", "notes:read"])).toEqual(["notes:read", "notes:write"])
  })

  it("ask for no scope (the grant's own) when none or only whitespace is given", () => {
    expect(requestedScopes([])).toBeUndefined()
    expect(requestedScopes(["", " \t "])).toBeUndefined()
  })
})
