import { randomBytes } from "node:crypto"
import { readFile, stat } from "node:fs/promises"
import { join } from "node:path"
import { isSecretHash, verifySecret } from "@token-broker/config"
import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import { BIN, runCli } from "./support/cli.js"
import { temporaryDirectory } from "./support/tempDir.js"

const COMMANDS = [
  [],
  ["init"],
  ["migrate"],
  ["grants"],
  ["grants", "list"],
  ["grants", "show"],
  ["grants", "revoke"],
  ["keys"],
  ["keys", "list"],
  ["keys", "add"],
  ["keys", "rotate"],
  ["keys", "retire"],
  ["token"],
  ["connect"],
  ["doctor"],
  ["hash-secret"]
]

describe("usage", () => {
  it.each(COMMANDS.map((c) => [c.join(" ") || "(root)", c]))(
    "--help on %s: exit 0, no colour off a terminal",
    async (_, command) => {
      const result = await runCli([...command, "--help"])
      expect(result.code).toBe(0)
      expect(result.stdout).toMatch(/USAGE/)
      expect(result.stdout).not.toContain("\u001b[")
    }
  )

  it("the root help lists every command", async () => {
    const { stdout } = await runCli(["--help"])
    for (const name of [
      "init",
      "migrate",
      "grants list",
      "grants show",
      "grants revoke",
      "keys add",
      "keys rotate",
      "keys retire",
      "token",
      "connect",
      "doctor",
      "hash-secret"
    ]) {
      expect(stdout).toContain(`- ${name} `)
    }
  })

  it("the bare help printed from the build's recording is what the whole CLI prints, plain and in colour", async () => {
    // main.js always runs the whole CLI; bin.js prints the recording for a bare --help or -h
    const main = join(BIN, "..", "main.js")
    for (const env of [{}, { FORCE_COLOR: "1" }]) {
      const whole = await runCli(["--help"], { env, bin: main })
      expect(whole.code).toBe(0)
      for (const flag of ["--help", "-h"]) {
        const recorded = await runCli([flag], { env })
        expect(recorded).toEqual(whole)
      }
    }
    const colour = await runCli(["--help"], { env: { FORCE_COLOR: "1" } })
    expect(colour.stdout).toContain("\u001b[")
  })

  it("--version", async () => {
    const result = await runCli(["--version"])
    expect(result.code).toBe(0)
    expect(result.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/)
  })

  it("an unknown command or option, or a missing value, is exit 2", async () => {
    expect((await runCli(["frobnicate"])).code).toBe(2)
    expect((await runCli(["grants", "list", "--frob"])).code).toBe(2)
    expect((await runCli(["grants", "list", "--limit", "many"])).code).toBe(2)
    expect((await runCli(["keys", "retire"])).code).toBe(2)
  })
})

describe("hash-secret", () => {
  it("prints the scrypt hash of the secret on stdin, one that config's verifySecret accepts", async () => {
    const secret = randomBytes(18).toString("base64url")
    const result = await runCli(["hash-secret"], { input: `${secret}\n` })
    expect(result.code).toBe(0)
    const hash = result.stdout.trim()
    expect(hash).toMatch(/^scrypt\$N=\d+,r=\d+,p=\d+\$[A-Za-z0-9+/=_-]+\$[A-Za-z0-9+/=_-]+$/)
    expect(isSecretHash(hash)).toBe(true)
    expect(await Effect.runPromise(verifySecret(secret, hash))).toBe(true)
    expect(result.stdout + result.stderr).not.toContain(secret)
  })

  it("a secret shorter than 16 characters is a usage error (exit 2), and nothing is printed on stdout", async () => {
    const result = await runCli(["hash-secret"], { input: "too-short\n" })
    expect(result.code).toBe(2)
    expect(result.stdout).toBe("")
    expect(result.stderr).toContain("at least 16 characters")
  })
})

describe("init", () => {
  const dir = temporaryDirectory("tb-cli-init-")

  it("writes a starter config and a key, both 0600, that migrate and keys accept", async () => {
    const result = await runCli(["init"], { cwd: dir() })
    expect(result.code).toBe(0)
    expect(result.stdout).toContain(`Wrote ${join(dir(), "token-broker.yaml")}`)
    expect((await stat(join(dir(), "token-broker.yaml"))).mode & 0o777).toBe(0o600)
    expect((await stat(join(dir(), "keys", "k1.key"))).mode & 0o777).toBe(0o600)
    const key = (await readFile(join(dir(), "keys", "k1.key"), "utf8")).trim()
    expect(Buffer.from(key, "base64")).toHaveLength(32)
    expect(await readFile(join(dir(), "token-broker.yaml"), "utf8")).not.toContain(key)
    const env = { PROVIDER_CLIENT_SECRET: "x" }
    const migrated = await runCli(["migrate"], { cwd: dir(), env })
    expect(migrated.code).toBe(0)
    expect(migrated.stdout).toMatch(/^sqlite .*token-broker\.db: migrated schema version 0 ->/)
    const keys = await runCli(["keys", "list", "--json"], { cwd: dir(), env })
    expect(JSON.parse(keys.stdout).keys).toEqual([{ kid: "k1", current: true, grants: 0 }])
  })

  it("refuses to overwrite (exit 1) and leaves the files as they were", async () => {
    const before = await readFile(join(dir(), "keys", "k1.key"), "utf8")
    const again = await runCli(["init"], { cwd: dir() })
    expect(again.code).toBe(1)
    expect(again.stderr).toMatch(/already exists; init never overwrites/)
    expect(await readFile(join(dir(), "keys", "k1.key"), "utf8")).toBe(before)
  })

  it("--storage postgres writes a config reading DATABASE_URL", async () => {
    const path = join(dir(), "pg", "broker.yaml")
    const result = await runCli([
      "init",
      "--storage",
      "postgres",
      "--issuer",
      "https://login.example.com",
      "--config",
      path
    ])
    expect(result.code).toBe(0)
    const text = await readFile(path, "utf8")
    expect(text).toMatch(/kind: postgres/)
    expect(text).toMatch(/url: \{ env: DATABASE_URL \}/)
    expect(text).not.toMatch(/allowInsecureRequests/)
    expect((await runCli(["init", "--storage", "oracle"])).code).toBe(2)
  })

  it("--storage mysql writes a config reading MARIADB_URL, and says what to export", async () => {
    const path = join(dir(), "mysql", "broker.yaml")
    const result = await runCli(["init", "--storage", "mysql", "--config", path])
    expect(result.code).toBe(0)
    expect(result.stderr + result.stdout).toMatch(
      /export MARIADB_URL=mysql:\/\/user:password@host:3306\/token_broker/
    )
    const text = await readFile(path, "utf8")
    expect(text).toMatch(/kind: mysql/)
    expect(text).toMatch(/url: \{ env: MARIADB_URL \}/)
    expect(text).toMatch(/migrate: false/)
  })
})
