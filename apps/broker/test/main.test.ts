import { mkdtemp, rename, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import type { ConfigFileInput } from "@token-broker/config"
import { type DevIdp, startDevIdp } from "@token-broker/dev-idp"
import { addressFileText, type ServerProcess, spawnServer } from "@token-broker/server-kit/testing"
import { afterAll, beforeAll, describe, expect, it } from "vitest"

const here = dirname(fileURLToPath(import.meta.url))
const main = resolve(here, "../src/main.ts")
// one process (no tsx wrapper in between), so signals reach the broker itself; "tsx" resolves from the cwd
const tsxLoader = "tsx"

const startMain = (args: ReadonlyArray<string>, env: Record<string, string>): ServerProcess =>
  spawnServer(process.execPath, ["--import", tsxLoader, main, ...args], {
    cwd: dirname(main),
    env: { ...process.env, ...env }
  })

/** Resolves once the process's output matches; rejects if it exits first. */
const outputMatching = (started: ServerProcess, pattern: RegExp): Promise<void> =>
  new Promise((resolveMatch, reject) => {
    const look = () => {
      if (pattern.test(started.output())) {
        started.child.stdout?.off("data", look)
        started.child.stderr?.off("data", look)
        resolveMatch()
      }
    }
    started.child.stdout?.on("data", look)
    started.child.stderr?.on("data", look)
    void started.exited.then((code) =>
      reject(new Error(`the broker exited (${code}) before printing ${pattern}:\n${started.output()}`))
    )
    look()
  })

const stop = async (started: ServerProcess) => {
  started.child.kill("SIGTERM")
  return started.exited
}

describe("broker --address-file: the bound address of a broker on port 0", () => {
  let idp: DevIdp
  let dir: string
  let configPath: string
  let file: ConfigFileInput
  const env = (): Record<string, string> => ({
    NOTES_CLIENT_SECRET: idp.client("token-broker").clientSecret ?? "",
    TB_KEY: Buffer.alloc(32, 7).toString("base64")
  })

  beforeAll(async () => {
    idp = await startDevIdp()
    dir = await mkdtemp(join(tmpdir(), "tb-main-"))
    const fileInput: ConfigFileInput = {
      server: { host: "127.0.0.1", port: 0, publicUrl: "http://broker.example.test", logLevel: "warn" },
      storage: { kind: "memory" },
      keyRing: { kind: "local", keys: [{ kid: "k1", env: "TB_KEY" }] },
      providers: [
        {
          id: "notes",
          issuer: idp.issuer,
          clientId: "token-broker",
          clientAuthentication: {
            method: "client_secret_basic",
            clientSecret: { env: "NOTES_CLIENT_SECRET" }
          },
          scopes: ["notes:read"],
          allowInsecureRequests: true
        }
      ]
    }
    file = fileInput
    configPath = join(dir, "broker.json")
    await writeFile(configPath, JSON.stringify(fileInput), { mode: 0o600 })
  })
  afterAll(async () => {
    await idp?.close()
    if (dir !== undefined) await rm(dir, { recursive: true, force: true })
  })

  it("writes the address it listens on, and a newline, once listening (--address-file or TOKEN_BROKER_ADDRESS_FILE)", async () => {
    const viaFlag = join(dir, "flag.address")
    const viaEnv = join(dir, "env.address")
    const runs = [
      { path: viaFlag, started: startMain(["--config", configPath, "--address-file", viaFlag], env()) },
      {
        path: viaEnv,
        started: startMain(["--config", configPath], { ...env(), TOKEN_BROKER_ADDRESS_FILE: viaEnv })
      }
    ]
    try {
      const addresses = await Promise.all(runs.map((run) => addressFileText(run.started, run.path)))
      for (const text of addresses) {
        expect(text).toMatch(/^http:\/\/127\.0\.0\.1:[1-9]\d*\n$/)
        const health = await fetch(`${text.trim()}/healthz`)
        expect(health.status).toBe(200)
      }
      // two brokers on port 0: two ports
      expect(new Set(addresses).size).toBe(2)
    } finally {
      for (const run of runs) await stop(run.started)
    }
  })

  it("follows the config file's key ring: a rotated current key is used without a restart, SIGHUP reloads", async () => {
    const rotating = join(dir, "rotating.json")
    const withKeys = (current: string, logLevel: "debug" | "warn"): ConfigFileInput => ({
      ...file,
      server: { ...file.server, logLevel },
      keyRing: {
        kind: "local",
        keys: [
          { kid: "k1", env: "TB_KEY" },
          { kid: "k2", env: "TB_KEY2" }
        ],
        current
      }
    })
    const replace = async (input: ConfigFileInput) => {
      await writeFile(`${rotating}.partial`, JSON.stringify(input), { mode: 0o600 })
      await rename(`${rotating}.partial`, rotating)
    }
    await replace(withKeys("k1", "debug"))
    const address = join(dir, "rotating.address")
    const started = startMain(["--config", rotating, "--address-file", address], {
      ...env(),
      TB_KEY2: Buffer.alloc(32, 9).toString("base64")
    })
    try {
      await addressFileText(started, address)
      await replace(withKeys("k2", "debug"))
      await outputMatching(started, /key ring reloaded: new secrets are encrypted under k2/)
      started.child.kill("SIGHUP")
      await outputMatching(started, /key ring reloaded: the current key is unchanged/)
      // a file that no longer loads changes nothing, and says why
      await replace({
        ...withKeys("k2", "debug"),
        keyRing: { kind: "local", keys: [{ kid: "k1", env: "TB_KEY" }], current: "k2" }
      })
      await outputMatching(started, /keyRing\.current.*the key ring keeps the keys it had/)
    } finally {
      await stop(started)
    }
  })

  it("stops with exit 1 naming the file when it cannot write it", async () => {
    const nowhere = join(dir, "no-such-folder", "broker.address")
    const started = startMain(["--config", configPath, "--address-file", nowhere], env())
    expect(await started.exited).toBe(1)
    expect(started.output()).toContain(`broker: cannot write the address file ${nowhere}`)
  })
})
