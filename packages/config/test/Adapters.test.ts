import { execFileSync } from "node:child_process"
import { randomBytes } from "node:crypto"
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises"
import { createRequire } from "node:module"
import { tmpdir } from "node:os"
import { dirname, join, relative, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { type ConfigFileInput, keyRingLayer, migrateStorage, parseConfig, storeLayer } from "../src/index.js"
import { AdapterImport, type AdapterPackage } from "../src/internal/adapters.js"

const KEY = randomBytes(32).toString("base64")
const env = { KEY, DB: "postgres://postgres@127.0.0.1:1/none", VAULT_TOKEN: "not-a-real-token" }

const input = (
  storage: ConfigFileInput["storage"],
  keyRing?: ConfigFileInput["keyRing"]
): ConfigFileInput => ({
  storage,
  keyRing: keyRing ?? { kind: "local", keys: [{ kid: "k1", env: "KEY" }] },
  providers: [
    {
      id: "notes",
      issuer: "https://idp.example.com",
      clientId: "broker",
      clientAuthentication: { method: "none" },
      scopes: ["notes:read"]
    }
  ]
})

/** What node's import() throws for a package that is not in node_modules. */
const notInstalled = (name: string) =>
  Object.assign(
    new Error(`Cannot find package '${name}' imported from /app/node_modules/@token-broker/config`),
    {
      code: "ERR_MODULE_NOT_FOUND"
    }
  )

/** An AdapterImport for a team that installed only `installed`; records what was asked for. */
const installedOnly =
  (installed: ReadonlyArray<AdapterPackage>, asked: Array<string>) => (name: AdapterPackage) => {
    asked.push(name)
    return installed.includes(name) ? Promise.resolve({}) : Promise.reject(notInstalled(name))
  }

const vault = {
  kind: "vault",
  address: "http://127.0.0.1:1",
  allowInsecureRequests: true,
  auth: { token: { env: "VAULT_TOKEN" } }
} as const

describe("storage adapters are optional peers, imported for the configured kind only", () => {
  const cases = [
    {
      kind: "sqlite",
      storage: { kind: "sqlite", filename: "grants.db" },
      pkg: "@token-broker/storage-sqlite"
    },
    {
      kind: "postgres",
      storage: { kind: "postgres", url: { env: "DB" } },
      pkg: "@token-broker/storage-postgres"
    },
    { kind: "mysql", storage: { kind: "mysql", url: { env: "DB" } }, pkg: "@token-broker/storage-mysql" },
    { kind: "vault", storage: vault, pkg: "@token-broker/storage-vault" }
  ] as const

  for (const { kind, storage, pkg } of cases) {
    it.effect(
      `storage.kind ${kind} without ${pkg} installed: ConfigInvalid names the package to install`,
      () =>
        Effect.gen(function* () {
          const config = yield* parseConfig(input(storage), env, { baseDir: tmpdir() })
          const asked: Array<string> = []
          const error = yield* Effect.flip(Effect.scoped(Layer.build(storeLayer(config.storage)))).pipe(
            Effect.provideService(AdapterImport, installedOnly([], asked))
          )
          expect(error._tag).toBe("ConfigInvalid")
          expect(error).toMatchObject({ field: "storage.kind" })
          expect(error.message).toBe(
            `storage.kind ${kind} needs the package ${pkg}, which is not installed: add it to your dependencies (npm install ${pkg})`
          )
          expect(asked).toEqual([pkg])
        })
    )
  }

  it.effect("keyRing.kind vault-transit without @token-broker/storage-vault: ConfigInvalid naming it", () =>
    Effect.gen(function* () {
      const { kind: _kind, ...connection } = vault
      const config = yield* parseConfig(
        input({ kind: "memory" }, { kind: "vault-transit", ...connection, key: "token-broker" }),
        env
      )
      const error = yield* Effect.flip(Effect.scoped(Layer.build(keyRingLayer(config.keyRing)))).pipe(
        Effect.provideService(AdapterImport, installedOnly([], []))
      )
      expect(error).toMatchObject({ _tag: "ConfigInvalid", field: "keyRing.kind" })
      expect(error.message).toContain("npm install @token-broker/storage-vault")
    })
  )

  it.effect(
    "migrateStorage without the backend's package: ConfigInvalid; memory and local keys import nothing",
    () =>
      Effect.gen(function* () {
        const asked: Array<string> = []
        const importer = installedOnly([], asked)
        const postgres = yield* parseConfig(input({ kind: "postgres", url: { env: "DB" } }), env)
        const error = yield* Effect.flip(migrateStorage(postgres.storage)).pipe(
          Effect.provideService(AdapterImport, importer)
        )
        expect(error).toMatchObject({ _tag: "ConfigInvalid", field: "storage.kind" })
        expect(error.message).toContain("npm install @token-broker/storage-postgres")
        asked.length = 0

        const memory = yield* parseConfig(input({ kind: "memory" }), env)
        yield* Effect.scoped(
          Layer.build(Layer.merge(storeLayer(memory.storage), keyRingLayer(memory.keyRing)))
        ).pipe(Effect.provideService(AdapterImport, importer))
        expect(
          yield* migrateStorage(memory.storage).pipe(Effect.provideService(AdapterImport, importer))
        ).toEqual({
          backend: "memory"
        })
        expect(asked).toEqual([])
      })
  )

  it.effect("an installed adapter that does not load says so, with the reason (not 'install it')", () =>
    Effect.gen(function* () {
      const config = yield* parseConfig(input({ kind: "sqlite", filename: "grants.db" }), env, {
        baseDir: tmpdir()
      })
      // a missing dependency of the adapter (not the adapter itself) is a broken install, not a missing peer
      const broken = () =>
        Promise.reject(
          Object.assign(new Error("Cannot find package 'better-sqlite3' imported from /app/node_modules/x"), {
            code: "ERR_MODULE_NOT_FOUND"
          })
        )
      const error = yield* Effect.flip(Effect.scoped(Layer.build(storeLayer(config.storage)))).pipe(
        Effect.provideService(AdapterImport, broken)
      )
      expect(error).toMatchObject({ _tag: "ConfigInvalid", field: "storage.kind" })
      expect(error.message).toBe(
        "storage.kind sqlite: @token-broker/storage-sqlite is installed but does not load: Cannot find package 'better-sqlite3' imported from /app/node_modules/x"
      )
    })
  )
})

describe("config's build (dist/) imports no adapter statically", () => {
  const root = resolve(dirname(fileURLToPath(import.meta.url)), "..")
  let out: string
  beforeAll(async () => {
    out = await mkdtemp(join(tmpdir(), "tb-config-dist-"))
    const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc")
    execFileSync(process.execPath, [tsc, "-p", join(root, "tsconfig.build.json"), "--outDir", out], {
      cwd: root
    })
  }, 120_000)
  afterAll(async () => {
    await rm(out, { recursive: true, force: true })
  })

  const files = async (ext: string) =>
    (await readdir(out, { recursive: true }))
      .filter((file) => file.endsWith(ext))
      .map((file) => join(out, file))

  it("no JS module imports @token-broker/storage-* at load time; only import() in internal/adapters.js", async () => {
    const dynamic: Array<string> = []
    for (const file of await files(".js")) {
      const text = await readFile(file, "utf8")
      expect(text, relative(out, file)).not.toMatch(
        /from\s*["']@token-broker\/storage-|^\s*import\s*["']@token-broker\/storage-/m
      )
      if (/import\(["']@token-broker\/storage-/.test(text)) dynamic.push(relative(out, file))
    }
    expect(dynamic).toEqual([join("internal", "adapters.js")])
  })

  it("no declaration reachable from index.d.ts names an adapter (consumers type-check without them)", async () => {
    const seen = new Set<string>()
    const visit = async (file: string): Promise<void> => {
      if (seen.has(file)) return
      seen.add(file)
      const text = await readFile(file, "utf8")
      expect(text, relative(out, file)).not.toMatch(/(from\s+|import\()["']@token-broker\/storage-/)
      for (const [, spec] of text.matchAll(/from\s+["'](\.[^"']+)["']|import\(["'](\.[^"']+)["']\)/g)) {
        if (spec !== undefined) await visit(resolve(dirname(file), spec.replace(/\.js$/, ".d.ts")))
      }
    }
    await visit(join(out, "index.d.ts"))
    expect(seen.size).toBeGreaterThan(5)
  })
})
