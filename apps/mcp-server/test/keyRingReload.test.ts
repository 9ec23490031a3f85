import { parseConfig, reloadKeyRing } from "@token-broker/config"
import { KeyRing } from "@token-broker/core"
import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import { startMcpServer } from "../src/McpServer.js"

const env = {
  TB_KEY: Buffer.alloc(32, 3).toString("base64"),
  TB_KEY2: Buffer.alloc(32, 4).toString("base64"),
  NOTES_CLIENT_SECRET: "notes-client-secret-0123456789",
  MCP_CALLER_SECRET: "mcp-caller-secret-0123456789"
}

const fileWith = (tokenSource: "in-process" | "remote") => ({
  storage: { kind: "memory" as const },
  keyRing: {
    kind: "local" as const,
    keys: [
      { kid: "k1", env: "TB_KEY" },
      { kid: "k2", env: "TB_KEY2" }
    ],
    current: "k1"
  },
  providers: [
    {
      id: "notes",
      // never asked: nothing in this test needs the provider
      issuer: "http://127.0.0.1:9/never-asked",
      clientId: "token-broker",
      clientAuthentication: {
        method: "client_secret_basic" as const,
        clientSecret: { env: "NOTES_CLIENT_SECRET" }
      },
      scopes: ["notes:read"],
      allowInsecureRequests: true
    }
  ],
  ...(tokenSource === "remote"
    ? {
        tokenSource: {
          kind: "remote" as const,
          url: "http://127.0.0.1:9",
          clientId: "mcp-server",
          clientSecret: { env: "MCP_CALLER_SECRET" },
          allowInsecureRequests: true
        }
      }
    : {}),
  mcpServer: {
    host: "127.0.0.1",
    port: 0,
    publicUrl: "http://mcp.example.test",
    authorizationServer: { issuer: "http://127.0.0.1:9/never-asked", allowInsecureRequests: true },
    notes: { provider: "notes", apiUrl: "http://127.0.0.1:9/notes", allowInsecureRequests: true },
    logLevel: "warn" as const
  }
})

describe("the MCP server's key ring can be reloaded while it runs", () => {
  it("with the broker in this process: secrets written after the reload are under the new current key", async () => {
    const config = await Effect.runPromise(parseConfig(fileWith("in-process"), env))
    const server = await startMcpServer(config, { port: 0, host: "127.0.0.1" })
    try {
      const run = server.runWithKeyRing
      expect(run).toBeDefined()
      if (run === undefined) return
      const kidNow = () => run(Effect.map(KeyRing.KeyRing, (ring) => ring.currentKid))
      expect(await kidNow()).toBe("k1")
      const rotated = await Effect.runPromise(
        parseConfig(
          { ...fileWith("in-process"), keyRing: { ...fileWith("in-process").keyRing, current: "k2" } },
          env
        )
      )
      const outcome = await run(reloadKeyRing(rotated.keyRing))
      expect(outcome).toMatchObject({ _tag: "Reloaded", previousKid: "k1", currentKid: "k2" })
      expect(await kidNow()).toBe("k2")
    } finally {
      await server.close()
    }
  })

  it("with a remote broker: no key ring here to reload", async () => {
    const config = await Effect.runPromise(parseConfig(fileWith("remote"), env))
    const server = await startMcpServer(config, { port: 0, host: "127.0.0.1" })
    try {
      expect(server.runWithKeyRing).toBeUndefined()
    } finally {
      await server.close()
    }
  })
})
