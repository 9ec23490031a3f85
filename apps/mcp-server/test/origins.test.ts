import { describe, expect, it } from "vitest"
import { makeRequestOriginCheck } from "../src/internal/origins.js"

describe("the DNS-rebinding check, asked again", () => {
  it("answers each Host the same every time, past the number of Hosts it remembers", () => {
    const check = makeRequestOriginCheck({
      publicUrl: "https://mcp.example.com",
      allowedHosts: ["mcp.example.com"],
      allowedOrigins: []
    })
    for (let round = 0; round < 2; round++) {
      expect(check.refusal("mcp.example.com", undefined)).toBeUndefined()
      expect(check.refusal("MCP.example.com:443", undefined)).toBeUndefined()
      expect(check.refusal("evil.example", undefined)).toBe("host")
      expect(check.refusal("mcp.example.com.evil.example", undefined)).toBe("host")
      expect(check.refusal(undefined, undefined)).toBe("host")
      expect(check.refusal("mcp.example.com", "https://evil.example")).toBe("origin")
    }
    // many Hosts, more than are remembered: the verdicts stay right
    for (let n = 0; n < 1_000; n++) expect(check.refusal(`h${n}.evil.example`, undefined)).toBe("host")
    expect(check.refusal("mcp.example.com", undefined)).toBeUndefined()
    expect(check.refusal("evil.example", undefined)).toBe("host")
  })
})
