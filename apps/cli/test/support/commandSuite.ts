import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { DefaultClientIds, type DevIdp, startDevIdp } from "@token-broker/dev-idp"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Backend, newKeyMaterial, writeConfig } from "./backends.js"
import { collectOutput, exitOf, runCli, spawnCli, waitForLine } from "./cli.js"

/**
 * Every command's success and failure paths and exit codes, against one storage backend and a real
 * dev-idp, through the built CLI run as a subprocess. The tests run in order and share one store.
 */
export const commandSuite = (name: string, makeBackend: () => Backend | Promise<Backend>) => {
  let dir: string
  let backend: Backend
  let idp: DevIdp
  let config: string
  let env: Record<string, string>
  const cli = (...args: ReadonlyArray<string>) => runCli([...args, "--config", config], { env, cwd: dir })
  const alice = () => idp.users[0] as { sub: string; username: string; password: string }

  beforeAll(async () => {
    backend = await makeBackend()
    dir = await mkdtemp(join(tmpdir(), `tb-cli-${backend.name}-`))
    // dev-idp's native client: its loopback redirect URI matches whatever port the CLI binds
    idp = await startDevIdp()
    config = await writeConfig(
      dir,
      backend,
      { issuer: idp.issuer, clientId: DefaultClientIds.native, clientSecret: "" },
      [{ kid: "k1", material: newKeyMaterial() }]
    )
    env = { ...backend.env, TB_TEST_CLIENT_SECRET: idp.client(DefaultClientIds.native).clientSecret ?? "" }
  })

  afterAll(async () => {
    await idp?.close()
    await backend?.cleanup()
    if (dir !== undefined) await rm(dir, { recursive: true, force: true })
  })

  const connectAlice = async (extra: ReadonlyArray<string> = [], consent = true) => {
    const child = spawnCli(
      [
        "connect",
        "--provider",
        "dev-idp",
        "--subject",
        alice().sub,
        "--port",
        "0",
        "--no-browser",
        "--config",
        config,
        ...extra
      ],
      { env, cwd: dir }
    )
    const output = collectOutput(child)
    const [, url = ""] = await waitForLine(child, "stderr", /^\s+(http:\/\/\S+)$/m)
    // the CLI bound port 0 itself and names the bound port in its redirect URI
    const redirectUri = new URL(new URL(url).searchParams.get("redirect_uri") ?? "")
    expect(redirectUri.hostname).toBe("127.0.0.1")
    expect(Number(redirectUri.port)).toBeGreaterThan(0)
    const callback = await idp.driveAuthorization(url, {
      username: alice().username,
      password: alice().password,
      consent
    })
    expect(callback.origin).toBe(redirectUri.origin)
    const page = await fetch(callback)
    const { code } = await exitOf(child)
    return { code, ...output, page: { status: page.status, text: await page.text() } }
  }

  describe(`token-broker on ${name}`, () => {
    it("before migrate: commands fail with exit 1 and say to run migrate", async () => {
      const result = await cli("grants", "list")
      expect(result.code).toBe(1)
      expect(result.stderr).toMatch(/schema version 0/)
      expect(result.stderr).toMatch(/hint: run: token-broker migrate/)
      expect(result.stdout).toBe("")
    })

    it("migrate applies the schema, and is a no-op the second time", async () => {
      const first = await cli("migrate")
      expect(first.code).toBe(0)
      expect(first.stdout).toMatch(
        new RegExp(`^${backend.name} .*: migrated schema version 0 -> [1-9]\\d* \\(applied 1`)
      )
      const second = await cli("migrate", "--json")
      expect(second.code).toBe(0)
      expect(JSON.parse(second.stdout)).toMatchObject({ backend: backend.name, applied: [] })
      const third = await cli("migrate")
      expect(third.stdout).toMatch(/schema is current \(version \d+\); nothing to do/)
    })

    it("doctor passes every check on a sound setup", async () => {
      const result = await cli("doctor")
      expect(result.stdout).toMatch(/✔ config: /)
      expect(result.stdout).toMatch(/✔ storage: /)
      expect(result.stdout).toMatch(/✔ migrations: the schema is current/)
      expect(result.stdout).toMatch(/✔ keys: k1 \(current\)/)
      expect(result.stdout).toMatch(/✔ provider dev-idp: OpenID Connect discovery at \S+ answers/)
      expect(result.stdout).toMatch(/✔ clock: /)
      expect(result.stdout).not.toMatch(/✖/)
      expect(result.code).toBe(0)
    })

    it("token without a grant: exit 3, nothing on stdout, and the connect command as the fix", async () => {
      const result = await cli("token", "--subject", alice().sub, "--provider", "dev-idp")
      expect(result.code).toBe(3)
      expect(result.stdout).toBe("")
      expect(result.stderr).toContain(`token-broker connect --provider dev-idp --subject ${alice().sub}`)
    })

    it("connect: a refused consent fails with exit 1 and stores nothing", async () => {
      const result = await connectAlice([], false)
      expect(result.code).toBe(1)
      expect(result.page.status).toBe(400)
      expect(result.stderr).toMatch(/access_denied/)
      expect((await cli("grants", "list", "--json")).stdout).toContain('"items": []')
    })

    it("connect: consent through dev-idp's headless driver stores the grant", async () => {
      const result = await connectAlice()
      expect(result.stderr).toContain(`open this URL in a browser`)
      expect(result.page.status).toBe(200)
      expect(result.page.text).toContain("Connected")
      expect(result.stdout).toMatch(new RegExp(`^Connected ${alice().sub} to dev-idp \\(grant version 1`))
      expect(result.code).toBe(0)
    })

    it("grants list: a table, filters, paging and --json", async () => {
      const table = await cli("grants", "list")
      expect(table.code).toBe(0)
      expect(table.stdout).toMatch(/^TENANT\s+SUBJECT\s+PROVIDER\s+STATUS/)
      expect(table.stdout).toMatch(new RegExp(`default\\s+${alice().sub}\\s+dev-idp\\s+active`))
      const json = JSON.parse((await cli("grants", "list", "--json", "--provider", "dev-idp")).stdout)
      expect(json.items).toHaveLength(1)
      expect(json.items[0]).toMatchObject({ subject: alice().sub, provider: "dev-idp", status: "active" })
      expect(JSON.stringify(json)).not.toMatch(/refresh_?token"?:\s*"/i)
      const none = await cli("grants", "list", "--subject", "nobody")
      expect(none.code).toBe(0)
      expect(none.stderr).toContain("No grants match.")
      const bad = await cli("grants", "list", "--limit", "0")
      expect(bad.code).toBe(2)
      const badCursor = await cli("grants", "list", "--cursor", "not-a-cursor")
      expect(badCursor.code).toBe(2)
    })

    it("grants show: the grant and its key; exit 3 when there is none", async () => {
      const shown = await cli("grants", "show", "--subject", alice().sub, "--provider", "dev-idp")
      expect(shown.code).toBe(0)
      expect(shown.stdout).toMatch(/status\s+active/)
      expect(shown.stdout).toMatch(/encrypted under key\s+k1/)
      const json = JSON.parse(
        (await cli("grants", "show", "-s", alice().sub, "-p", "dev-idp", "--json")).stdout
      )
      expect(json.keyIds).toEqual(["k1"])
      const missing = await cli("grants", "show", "--subject", "nobody", "--provider", "dev-idp")
      expect(missing.code).toBe(3)
      expect(missing.stderr).toMatch(/No grant of "nobody"/)
    })

    it("token prints only the access token, which the upstream API accepts; --json has the details", async () => {
      const plain = await cli(
        "token",
        "--subject",
        alice().sub,
        "--provider",
        "dev-idp",
        "--scope",
        "notes:read"
      )
      expect(plain.code).toBe(0)
      const lines = plain.stdout.split("\n").filter((l) => l.length > 0)
      expect(lines).toHaveLength(1)
      expect(lines[0]).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/)
      const notes = await fetch(`${idp.notesApiUrl}/notes`, {
        headers: { authorization: `Bearer ${lines[0]}` }
      })
      expect(notes.status).toBe(200)
      const json = JSON.parse((await cli("token", "-s", alice().sub, "-p", "dev-idp", "--json")).stdout)
      expect(json).toMatchObject({ tokenType: "Bearer" })
      expect(json.expiresIn).toBeGreaterThan(0)
      expect(json.accessToken).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/)
    })

    it("token: an unknown provider is a usage error (exit 2); a missing option too", async () => {
      const unknown = await cli("token", "--subject", alice().sub, "--provider", "nope")
      expect(unknown.code).toBe(2)
      expect(unknown.stderr).toMatch(/nope/)
      const missing = await cli("token", "--provider", "dev-idp")
      expect(missing.code).toBe(2)
      expect(missing.stdout).toBe("")
    })

    it("keys add, rotate and retire on a live grant; the grant keeps working", async () => {
      const retireCurrent = await cli("keys", "retire", "k1")
      expect(retireCurrent.code).toBe(1)
      expect(retireCurrent.stderr).toMatch(/current key/)
      const added = await cli("keys", "add", "--make-current")
      expect(added.code).toBe(0)
      expect(added.stdout).toMatch(/Added key k2/)
      const written = await readFile(config, "utf8")
      expect(written).toMatch(/kid: k2/)
      expect(written).toMatch(/current: k2/)
      expect(written).toContain("# written by the CLI tests")
      const inUse = await cli("keys", "retire", "k1")
      expect(inUse.code).toBe(1)
      expect(inUse.stderr).toMatch(/1 grants are still encrypted under "k1"/)
      const dry = await cli("keys", "rotate", "--dry-run")
      expect(dry.code).toBe(0)
      expect(dry.stdout).toMatch(/1 grants: would re-encrypt 1 under k2/)
      const stillInUse = await cli("keys", "retire", "k1")
      expect(stillInUse.code).toBe(1)
      const rotated = await cli("keys", "rotate")
      expect(rotated.code).toBe(0)
      expect(rotated.stdout).toMatch(/re-encrypted 1 under k2/)
      expect(rotated.stderr).toMatch(/re-encrypting: 100% 1\/1/)
      const retired = await cli("keys", "retire", "k1")
      expect(retired.code).toBe(0)
      // a key added without --make-current leaves the current key as it was
      const third = await cli("keys", "add")
      expect(third.code).toBe(0)
      expect(await readFile(config, "utf8")).toMatch(/current: k2/)
      const listed = JSON.parse((await cli("keys", "list", "--json")).stdout)
      expect(listed.keys).toEqual([
        { kid: "k2", current: true, grants: 1 },
        { kid: "k3", current: false, grants: 0 }
      ])
      const token = await cli("token", "-s", alice().sub, "-p", "dev-idp", "--min-ttl", "295")
      expect(token.code).toBe(0)
      const unknown = await cli("keys", "retire", "k9")
      expect(unknown.code).toBe(2)
    })

    it("grants revoke: refuses without --yes off a terminal, revokes at the provider with --yes", async () => {
      const refused = await cli("grants", "revoke", "--subject", alice().sub, "--provider", "dev-idp")
      expect(refused.code).toBe(2)
      expect(refused.stderr).toMatch(/pass --yes/)
      idp.revocations.clear()
      const revoked = await cli(
        "grants",
        "revoke",
        "--subject",
        alice().sub,
        "--provider",
        "dev-idp",
        "--yes"
      )
      expect(revoked.code).toBe(0)
      expect(revoked.stdout).toMatch(
        /Revoked the grant of .* at the provider( \(its refresh token.*\))? and removed it here/
      )
      expect(idp.revocations.list()).toEqual([
        expect.objectContaining({ clientId: DefaultClientIds.native, tokenTypeHint: "refresh_token" })
      ])
      const again = await cli("grants", "revoke", "--subject", alice().sub, "--provider", "dev-idp", "--yes")
      expect(again.code).toBe(3)
      const token = await cli("token", "-s", alice().sub, "-p", "dev-idp")
      expect(token.code).toBe(3)
    })

    it("config errors are usage errors (exit 2) that name the field", async () => {
      const missing = await runCli(["grants", "list", "--config", join(dir, "missing.yaml")], { env })
      expect(missing.code).toBe(2)
      expect(missing.stderr).toMatch(/hint: create one with: token-broker init/)
      const broken = join(dir, "broken.yaml")
      await writeFile(
        broken,
        (await readFile(config, "utf8")).replace(`clientId: ${DefaultClientIds.native}`, "clientId: ''")
      )
      const invalid = await runCli(["grants", "list", "--config", broken], { env })
      expect(invalid.code).toBe(2)
      expect(invalid.stderr).toMatch(/providers\[0\]\.clientId/)
      const noSecret = await runCli(["grants", "list", "--config", config], { env: backend.env })
      expect(noSecret.code).toBe(2)
      expect(noSecret.stderr).toMatch(/TB_TEST_CLIENT_SECRET is not set/)
      const viaEnv = await runCli(["grants", "list", "--json"], {
        env: { ...env, TOKEN_BROKER_CONFIG: config }
      })
      expect(viaEnv.code).toBe(0)
    })
  })
}
