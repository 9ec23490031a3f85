import { execFileSync } from "node:child_process"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { type DevIdp, startDevIdp } from "@token-broker/dev-idp"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { newKeyMaterial, sqliteBackend, writeConfig } from "./support/backends.js"
import { BIN, baseEnv, runCli } from "./support/cli.js"
import { decode, env, seed } from "./support/grants.js"

/**
 * The CLI as a person sees it: run inside tmux (a real pseudo-terminal), read back with capture-pane,
 * answered with send-keys. tmux comes from the system (.ci/run installs it).
 */
const socket = `tb-cli-${process.pid}`
const tmux = (...args: ReadonlyArray<string>) =>
  execFileSync("tmux", ["-L", socket, ...args], { encoding: "utf8" })
const quote = (s: string) => `'${s.replace(/'/g, "'\\''")}'`

const screen = () => tmux("capture-pane", "-p", "-t", "cli")

const waitForScreen = async (pattern: RegExp, timeoutMs = 120_000): Promise<string> => {
  const deadline = Date.now() + timeoutMs
  while (true) {
    const text = screen()
    if (pattern.test(text)) return text
    if (Date.now() > deadline) throw new Error(`the terminal never showed ${pattern}:\n${text}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

/** Starts `token-broker <args>` in a fresh 120x30 terminal; the shell then prints the exit code. */
const runInTerminal = (args: ReadonlyArray<string>, environment: Record<string, string>) => {
  try {
    tmux("kill-session", "-t", "cli")
  } catch {
    // no session yet
  }
  const assignments = Object.entries(baseEnv({ ...environment, TERM: "xterm-256color" }))
    .map(([k, v]) => `${k}=${quote(v)}`)
    .join(" ")
  const command = `env -i ${assignments} ${quote(process.execPath)} ${quote(BIN)} ${args.map(quote).join(" ")}; echo "EXIT=$?"; sleep 60`
  tmux("new-session", "-d", "-s", "cli", "-x", "120", "-y", "30", command)
}

describe("in a terminal", () => {
  let dir: string
  let config: string
  let idp: DevIdp
  const backend = sqliteBackend()
  let environment: Record<string, string>

  beforeAll(async () => {
    try {
      execFileSync("tmux", ["-V"])
    } catch {
      throw new Error("tmux is not installed: apt-get install -y tmux (.ci/run does this)")
    }
    idp = await startDevIdp()
    dir = await mkdtemp(join(tmpdir(), "tb-cli-tty-"))
    const k1 = newKeyMaterial()
    config = await writeConfig(dir, backend, { issuer: idp.issuer, clientSecret: "" }, [
      { kid: "k1", material: k1 }
    ])
    environment = { ...env(backend), TB_TEST_CLIENT_SECRET: idp.client("token-broker").clientSecret ?? "" }
    expect((await runCli(["migrate", "--config", config], { env: environment })).code).toBe(0)
    await seed(config, backend, decode("k1", k1), 3000)
    expect((await runCli(["keys", "add", "--config", config], { env: environment })).code).toBe(0)
  })

  afterAll(async () => {
    try {
      tmux("kill-server")
    } catch {
      // already gone
    }
    await idp?.close()
    if (dir !== undefined) await rm(dir, { recursive: true, force: true })
  })

  it("keys rotate draws one progress bar, redrawn in place", async () => {
    runInTerminal(["keys", "rotate", "--page-size", "100", "--config", config], environment)
    const midway = await waitForScreen(/re-encrypting [█░]{30}/)
    expect(midway).toMatch(/re-encrypting [█░]{30}\s+\d+% [\d,]+\/3,000/)
    const done = await waitForScreen(/EXIT=\d+/)
    expect(done).toMatch(/EXIT=0/)
    // one bar line, not one line per update
    expect(done.match(/re-encrypting /g)).toHaveLength(1)
    expect(done).toMatch(
      /re-encrypting █{30}\s+100% 3,000\/3,000\s+re-encrypted 3,000 · already current 0 · failed 0/
    )
    expect(done).toMatch(/3,000 grants: re-encrypted 3,000 under k2/)
  })

  it("grants revoke asks, and answers to the keys typed", async () => {
    /** Runs grants revoke in the terminal, types `key` at its question, and returns the final screen. */
    const revokeAnswering = async (key: string) => {
      runInTerminal(
        ["grants", "revoke", "--subject", "user-00001", "--provider", "dev-idp", "--config", config],
        environment
      )
      await waitForScreen(/Revoke the grant of user-00001 for dev-idp\?/)
      tmux("send-keys", "-t", "cli", key)
      return waitForScreen(/EXIT=\d+/)
    }
    const declined = await revokeAnswering("n")
    expect(declined).toMatch(/Not revoked\./)
    expect(declined).toMatch(/EXIT=1/)

    const accepted = await revokeAnswering("y")
    // the line goes on to say which tokens were revoked; the terminal may wrap it
    expect(accepted).toMatch(/Revoked the grant of user-00001 for dev-idp at the provider/)
    expect(accepted).toMatch(/EXIT=0/)
    const gone = await runCli(["grants", "show", "-s", "user-00001", "-p", "dev-idp", "--config", config], {
      env: environment
    })
    expect(gone.code).toBe(3)
  })
})
