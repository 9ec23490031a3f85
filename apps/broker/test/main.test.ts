import { type ChildProcess, spawn } from "node:child_process"
import { watch } from "node:fs"
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { basename, dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import type { ConfigFileInput } from "@token-broker/config"
import { type DevIdp, startDevIdp } from "@token-broker/dev-idp"
import { afterAll, beforeAll, describe, expect, it } from "vitest"

const here = dirname(fileURLToPath(import.meta.url))
const main = resolve(here, "../src/main.ts")
const tsx = resolve(here, "../node_modules/.bin/tsx")

interface Started {
  readonly child: ChildProcess
  readonly output: () => string
  readonly exited: Promise<number | null>
}

const startMain = (args: ReadonlyArray<string>, env: Record<string, string>): Started => {
  const child = spawn(tsx, [main, ...args], {
    cwd: dirname(main),
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"]
  })
  let output = ""
  child.stdout?.on("data", (chunk: Buffer) => {
    output += chunk.toString()
  })
  child.stderr?.on("data", (chunk: Buffer) => {
    output += chunk.toString()
  })
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)))
  return { child, output: () => output, exited }
}

/** The address file's text once it appears; rejects if the process exits first. */
const addressOf = (started: Started, path: string): Promise<string> =>
  new Promise((resolveAddress, reject) => {
    const watcher = watch(dirname(path))
    let settled = false
    const finish = (settle: () => void) => {
      if (settled) return
      settled = true
      watcher.close()
      settle()
    }
    const look = () =>
      readFile(path, "utf8").then(
        (text) => finish(() => resolveAddress(text)),
        () => undefined
      )
    watcher.on("change", (_event, name) => {
      if (name === basename(path)) void look()
    })
    void started.exited.then((code) =>
      finish(() => reject(new Error(`the broker exited (${code}):\n${started.output()}`)))
    )
    void look()
  })

const stop = async (started: Started) => {
  started.child.kill("SIGTERM")
  return started.exited
}

describe("broker --address-file: the bound address of a broker on port 0", () => {
  let idp: DevIdp
  let dir: string
  let configPath: string
  const env = (): Record<string, string> => ({
    NOTES_CLIENT_SECRET: idp.client("token-broker").clientSecret ?? "",
    TB_KEY: Buffer.alloc(32, 7).toString("base64")
  })

  beforeAll(async () => {
    idp = await startDevIdp()
    dir = await mkdtemp(join(tmpdir(), "tb-main-"))
    const file: ConfigFileInput = {
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
    configPath = join(dir, "broker.json")
    await writeFile(configPath, JSON.stringify(file), { mode: 0o600 })
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
      const addresses = await Promise.all(runs.map((run) => addressOf(run.started, run.path)))
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

  it("stops with exit 1 naming the file when it cannot write it", async () => {
    const nowhere = join(dir, "no-such-folder", "broker.address")
    const started = startMain(["--config", configPath, "--address-file", nowhere], env())
    expect(await started.exited).toBe(1)
    expect(started.output()).toContain(`broker: cannot write the address file ${nowhere}`)
  })
})
