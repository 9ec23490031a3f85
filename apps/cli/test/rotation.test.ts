import { mkdtemp, readFile, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  type Backend,
  newKeyMaterial,
  postgresBackend,
  sqliteBackend,
  writeConfig
} from "./support/backends.js"
import { exitOf, runCli, spawnCli, waitForLine } from "./support/cli.js"
import { decode, env, inspect, seed } from "./support/grants.js"

const GRANTS = 10_000

describe.each([
  ["SQLite", sqliteBackend],
  ["PostgreSQL", postgresBackend]
] as const)("keys rotate over 10,000 grants on %s", (_name, makeBackend) => {
  let backend: Backend
  let dir: string
  let config: string
  const k1 = newKeyMaterial()

  beforeAll(async () => {
    backend = await makeBackend()
    dir = await mkdtemp(join(tmpdir(), "tb-cli-rotate-"))
    config = await writeConfig(dir, backend, { issuer: "http://127.0.0.1:9", clientSecret: "" }, [
      { kid: "k1", material: k1 }
    ])
    expect((await runCli(["migrate", "--config", config], { env: env(backend) })).code).toBe(0)
    await seed(config, backend, decode("k1", k1), GRANTS)
  })

  afterAll(async () => {
    await backend?.cleanup()
    if (dir !== undefined) await rm(dir, { recursive: true, force: true })
  })

  it("is killed halfway, resumed, and leaves every grant readable with only the new key", async () => {
    expect((await runCli(["keys", "add", "--config", config], { env: env(backend) })).code).toBe(0)
    const k2 = (await readFile(join(dir, "keys", "k2.key"), "utf8")).trim()

    const dry = await runCli(["keys", "rotate", "--dry-run", "--json", "--config", config], {
      env: env(backend)
    })
    expect(dry.code).toBe(0)
    expect(JSON.parse(dry.stdout)).toMatchObject({
      dryRun: true,
      scanned: GRANTS,
      reencrypted: GRANTS,
      current: 0
    })

    // small pages, so that progress is reported often and the kill lands mid-run
    const first = spawnCli(["keys", "rotate", "--page-size", "50", "--config", config], { env: env(backend) })
    const [, percent] = await waitForLine(first, "stderr", /re-encrypting: ([3-9]\d)% /)
    first.kill("SIGKILL")
    expect((await exitOf(first)).signal).toBe("SIGKILL")
    expect(Number(percent)).toBeGreaterThanOrEqual(30)

    const halfway = await inspect(config, backend, decode("k2", k2))
    expect(halfway.total).toBe(GRANTS)
    expect(halfway.decrypted).toBeGreaterThan(0)
    expect(halfway.decrypted).toBeLessThan(GRANTS)
    // the config already names k2 as current: running rotate again resumes
    expect(await readFile(config, "utf8")).toMatch(/current: k2/)

    const resumed = await runCli(["keys", "rotate", "--json", "--config", config], { env: env(backend) })
    expect(resumed.code).toBe(0)
    const result = JSON.parse(resumed.stdout)
    expect(result).toMatchObject({ scanned: GRANTS, failed: 0, kidsInUse: ["k2"], retirable: ["k1"] })
    expect(result.current).toBeGreaterThanOrEqual(halfway.decrypted)
    expect(result.reencrypted + result.current).toBe(GRANTS)

    const after = await inspect(config, backend, decode("k2", k2))
    expect(after).toEqual({ total: GRANTS, decrypted: GRANTS, mismatched: 0 })

    const retired = await runCli(["keys", "retire", "k1", "--config", config], { env: env(backend) })
    expect(retired.code).toBe(0)
    expect(await readFile(config, "utf8")).not.toMatch(/kid: k1/)
  })
})
