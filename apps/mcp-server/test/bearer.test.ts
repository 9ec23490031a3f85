import { describe, expect, it } from "vitest"
import { bearerToken, challenge, scopesNeeded, stepUpScopes } from "../src/internal/bearer.js"
import { makeScopePolicy, DEFAULT_SCOPES as policy } from "../src/Scopes.js"

describe("bearer checks", () => {
  it("reads only well-formed Bearer credentials", () => {
    expect(bearerToken("Bearer abc.def-ghi_~+/=")).toBe("abc.def-ghi_~+/=")
    expect(bearerToken("bearer abc")).toBe("abc")
    expect(bearerToken(undefined)).toBeUndefined()
    expect(bearerToken("Basic dXNlcjpwdw==")).toBeUndefined()
    expect(bearerToken("Bearer a b")).toBeUndefined()
    expect(bearerToken("Bearer ")).toBeUndefined()
  })

  it("names the metadata and the scope; the error only with a token; quotes safely", () => {
    expect(challenge({ resourceMetadata: "https://m/.well-known/x", scopes: ["a", "b"] })).toBe(
      'Bearer resource_metadata="https://m/.well-known/x", scope="a b"'
    )
    expect(
      challenge({ resourceMetadata: "u", scopes: ["a"], error: "invalid_token", description: 'say "hi"\n\\' })
    ).toBe(
      'Bearer resource_metadata="u", scope="a", error="invalid_token", error_description="say \\"hi\\" \\\\"'
    )
  })

  it("needs mcp:tools for everything and a tool's own scopes for tools/call, in batches too", () => {
    expect(scopesNeeded(policy, { method: "initialize" })).toEqual(["mcp:tools"])
    expect(scopesNeeded(policy, { method: "tools/call", params: { name: "notes_list" } })).toEqual([
      "mcp:tools",
      "notes:read"
    ])
    expect(
      scopesNeeded(policy, [
        { method: "tools/call", params: { name: "notes_get" } },
        { method: "tools/call", params: { name: "notes_delete" } }
      ])
    ).toEqual(["mcp:tools", "notes:read", "notes:write"])
    expect(scopesNeeded(policy, { method: "tools/call", params: { name: "connection_status" } })).toEqual([
      "mcp:tools"
    ])
    expect(scopesNeeded(policy, "garbage")).toEqual(["mcp:tools"])
  })

  it("drops the scope parameter where the authorization server has no scopes", () => {
    const none = makeScopePolicy({ tools: [], notesRead: [], notesWrite: [] })
    expect(challenge({ resourceMetadata: "u", scopes: none.supported })).toBe('Bearer resource_metadata="u"')
    expect(scopesNeeded(none, { method: "tools/call", params: { name: "notes_delete" } })).toEqual([])
  })

  it("asks a step-up for what the token has plus what is missing", () => {
    expect(
      stepUpScopes(policy, ["notes:read", "mcp:tools", "profile"], ["mcp:tools", "notes:write"])
    ).toEqual(["mcp:tools", "notes:read", "notes:write", "profile"])
  })
})
