import { type ConfigFileInput, parseConfig } from "@token-broker/config"
import { Effect, Either } from "effect"
import { describe, expect, it } from "vitest"

const base: ConfigFileInput = {
  storage: { kind: "memory" },
  keyRing: { kind: "local", keys: [{ kid: "k1", env: "KEY" }] },
  providers: [
    {
      id: "nextcloud",
      issuer: "https://cloud.example.com",
      clientId: "token-broker",
      clientAuthentication: { method: "none" },
      scopes: ["notes:read", "notes:write"]
    }
  ]
}
const env = { KEY: Buffer.alloc(32, 7).toString("base64") }
const mcpServer = {
  publicUrl: "https://mcp.example.com/",
  authorizationServer: { issuer: "https://cloud.example.com" },
  notes: { provider: "nextcloud", apiUrl: "https://cloud.example.com/index.php/apps/notes/api/v1" }
}

const parse = (mcp: unknown, extra: Partial<ConfigFileInput> = {}) =>
  Effect.runPromise(Effect.either(parseConfig({ ...base, ...extra, mcpServer: mcp }, env)))

describe("the mcpServer config section", () => {
  it("resolves defaults: port 8090, the MCP endpoint under publicUrl, background tokens, notes scopes", async () => {
    const result = await parse(mcpServer)
    expect(Either.isRight(result)).toBe(true)
    const config = Either.getOrThrow(result).mcpServer
    expect(config).toMatchObject({
      host: "127.0.0.1",
      port: 8090,
      publicUrl: "https://mcp.example.com",
      exchangeProviders: [],
      clientScopes: { tools: ["mcp:tools"], notesRead: ["notes:read"], notesWrite: ["notes:write"] },
      notes: { provider: "nextcloud", readScopes: ["notes:read"], writeScopes: ["notes:write"] }
    })
  })

  it("is optional: the broker's own config has none", async () => {
    const result = await Effect.runPromise(parseConfig(base, env))
    expect(result.mcpServer).toBeUndefined()
  })

  const refusals: Array<[string, unknown, Partial<ConfigFileInput>, string]> = [
    [
      "no authorization server",
      { publicUrl: "https://mcp.example.com" },
      {},
      "mcpServer.authorizationServer"
    ],
    [
      "an http issuer",
      { ...mcpServer, authorizationServer: { issuer: "http://cloud.example.com" } },
      {},
      "mcpServer.authorizationServer.issuer"
    ],
    [
      "an unknown notes provider",
      { ...mcpServer, notes: { ...mcpServer.notes, provider: "dropbox" } },
      {},
      "mcpServer.notes.provider"
    ],
    [
      "exchange for a provider without tokenExchange",
      { ...mcpServer, exchangeProviders: ["nextcloud"] },
      {},
      "mcpServer.exchangeProviders[0]"
    ],
    [
      "an allowed origin with a path",
      { ...mcpServer, allowedOrigins: ["https://app.example.com/mcp"] },
      {},
      "mcpServer.allowedOrigins[0]"
    ],
    [
      "an allowed host with a path",
      { ...mcpServer, allowedHosts: ["mcp.example.com/x"] },
      {},
      "mcpServer.allowedHosts[0]"
    ],
    ["an unknown key", { ...mcpServer, scope: "x" }, {}, "mcpServer"]
  ]
  for (const [name, section, extra, field] of refusals) {
    it(`refuses ${name}, naming the field`, async () => {
      const result = await parse(section, extra)
      expect(Either.isLeft(result)).toBe(true)
      if (Either.isLeft(result)) {
        expect(result.left._tag).toBe("ConfigInvalid")
        expect(result.left.field).toBe(field)
      }
    })
  }
})
