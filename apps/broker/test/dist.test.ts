import { execFile } from "node:child_process"
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"
import type { ConfigFileInput } from "@token-broker/config"
import { addressFileText, spawnServer } from "@token-broker/server-kit/testing"
import { afterAll, beforeAll, describe, expect, it } from "vitest"

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..")
const bin = join(root, "dist/main.js")
const run = promisify(execFile)

// production starts the bundle with plain node (the package's bin), not TypeScript through tsx
describe("the built broker (dist/main.js, the token-broker-server bin)", () => {
  let dir: string
  beforeAll(async () => {
    await run(process.execPath, ["build.mjs"], { cwd: root })
    dir = await mkdtemp(join(tmpdir(), "tb-dist-"))
  })
  afterAll(async () => {
    if (dir !== undefined) await rm(dir, { recursive: true, force: true })
  })

  it("starts with plain node on SQLite (the adapter loaded on demand) and answers /healthz", async () => {
    const config: ConfigFileInput = {
      server: { host: "127.0.0.1", port: 0, logLevel: "warn" },
      storage: { kind: "sqlite", filename: "grants.db" },
      keyRing: { kind: "local", keys: [{ kid: "k1", env: "TB_KEY" }] },
      providers: [
        {
          id: "notes",
          issuer: "https://idp.example.test",
          clientId: "token-broker",
          clientAuthentication: { method: "none" },
          scopes: ["notes:read"]
        }
      ]
    }
    await writeFile(join(dir, "broker.json"), JSON.stringify(config), { mode: 0o600 })
    const addressFile = join(dir, "broker.address")
    const server = spawnServer(
      process.execPath,
      [bin, "--config", join(dir, "broker.json"), "--address-file", addressFile],
      { cwd: dir, env: { PATH: process.env.PATH ?? "", TB_KEY: Buffer.alloc(32, 3).toString("base64") } }
    )
    try {
      const address = (await addressFileText(server, addressFile)).trim()
      expect((await fetch(`${address}/healthz`)).status).toBe(200)
      expect((await readFile(join(dir, "grants.db"))).subarray(0, 15).toString()).toBe("SQLite format 3")
    } finally {
      server.child.kill("SIGTERM")
      await server.exited
    }
  })

  it("hash-secret moved to the CLI: the broker says which command to run (exit 2)", async () => {
    const failed = await run(process.execPath, [bin, "hash-secret"]).catch((error: unknown) => error)
    expect(failed).toMatchObject({ code: 2 })
    expect((failed as { stderr: string }).stderr).toContain("token-broker hash-secret")
  })
})
