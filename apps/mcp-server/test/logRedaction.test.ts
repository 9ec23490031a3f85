import { secretsReachingTheLog } from "@token-broker/server-kit/testing"
import { describe, expect, it } from "vitest"
import { makeLogger } from "../src/McpServer.js"

describe("the MCP server's log", () => {
  it("shows no cookie, client secret, token, password, code or state", () => {
    expect(secretsReachingTheLog((stream) => makeLogger("info", stream))).toEqual([])
  })
})
