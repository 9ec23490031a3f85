import { randomBytes } from "node:crypto"
import { chmod, mkdtemp, readFile, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { GrantStore, KeyRing, TokenBroker } from "@token-broker/core"
import { Duration, Effect, Layer, Redacted } from "effect"
import Mysql from "mysql2/promise"
import {
  brokerLayer,
  type ConfigFileInput,
  jsonSchemaText,
  loadConfig,
  migrateStorage,
  parseConfig
} from "../src/index.js"
import { configFile } from "./support/configFile.js"

const KEY = randomBytes(32).toString("base64")
/** A hash of the form and parameters hashSecret writes (of no secret anyone knows): config checks only its shape. */
const WELL_FORMED_HASH = `scrypt$N=16384,r=8,p=5$${"A".repeat(22)}$${"B".repeat(43)}`
const env = { KEY, NOTES_SECRET: "notes-client-secret-0123456789" }

const valid = (): ConfigFileInput => configFile()

/** A table row's change: the first provider of the valid config with `fields` set. */
const provider =
  (fields: Record<string, unknown>) =>
  (c: Record<string, unknown>): unknown => ({
    ...c,
    providers: [{ ...(c.providers as Array<object>)[0], ...fields }]
  })

const failure = (input: unknown, environment: Record<string, string> = env) =>
  Effect.flip(parseConfig(input, environment))

let dir: string
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "tb-config-"))
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

describe("parseConfig", () => {
  it.effect("a minimal config gets its defaults; secrets become Redacted", () =>
    Effect.gen(function* () {
      const config = yield* parseConfig(valid(), env)
      expect(config.server).toMatchObject({
        host: "127.0.0.1",
        port: 8080,
        publicUrl: "http://127.0.0.1:8080"
      })
      expect(Duration.toMillis(config.server.shutdownTimeout)).toBe(10_000)
      const provider = config.providers[0]
      expect(provider?.redirectUri).toBe("http://127.0.0.1:8080/connect/callback")
      expect(provider?.allowInsecureRequests).toBe(false)
      expect(provider?.identityBinding).toBe("same-subject")
      expect(provider?.replacedGrants).toBe("revoke")
      const auth = provider?.clientAuthentication
      expect(auth?.method === "client_secret_basic" && Redacted.isRedacted(auth.clientSecret)).toBe(true)
      // RFC 6749's form-encoding unless the config says "plain"
      expect(auth?.method === "client_secret_basic" && auth.encoding).toBe("form")
      // never printed
      expect(JSON.stringify(config)).not.toContain(env.NOTES_SECRET)
      expect(config.tokenSource).toEqual({ kind: "in-process" })
      expect(config.tenant).toBe("default")
    })
  )

  it.effect("a plain OAuth 2.0 provider (GitHub-style) loads with its endpoints and settings", () =>
    Effect.gen(function* () {
      const input = valid()
      const config = yield* parseConfig(
        {
          ...input,
          providers: [
            {
              ...input.providers?.[0],
              id: "github",
              issuer: "https://github.com",
              discovery: "none",
              endpoints: {
                authorization: "https://github.com/login/oauth/authorize",
                token: "https://github.com/login/oauth/access_token",
                userinfo: "https://api.github.com/user"
              },
              offlineAccessScope: null,
              userinfoSubjectField: "id",
              invalidGrantErrors: ["bad_refresh_token"],
              authorizationParameters: { allow_signup: "false" }
            }
          ]
        },
        env
      )
      expect(config.providers[0]).toMatchObject({
        discovery: "none",
        endpoints: { token: "https://github.com/login/oauth/access_token" },
        offlineAccessScope: null,
        userinfoSubjectField: "id",
        invalidGrantErrors: ["bad_refresh_token"],
        authorizationParameters: { allow_signup: "false" },
        identityBinding: "same-subject"
      })
      // the defaults: OpenID Connect discovery and offline_access
      const plain = yield* parseConfig(valid(), env)
      expect(plain.providers[0]).toMatchObject({
        discovery: "openid-configuration",
        offlineAccessScope: "offline_access"
      })
    })
  )

  const cases: Array<[string, (c: Record<string, unknown>) => unknown, string, RegExp]> = [
    ["a missing storage", (c) => ({ ...c, storage: undefined }), "storage", /storage.kind|required/],
    [
      "an unknown storage kind",
      (c) => ({ ...c, storage: { kind: "redis" } }),
      "storage.kind",
      /sqlite, postgres, mysql, vault or memory/
    ],
    ["an unknown key (typo)", (c) => ({ ...c, provders: [] }), "(root)", /unknown key "provders".*spelling/],
    [
      // a present field of the wrong type is not "required": the message names the type it must have
      "a field of the wrong type",
      provider({ clientId: 42 }),
      "providers[0].clientId",
      /^(?!.*is required).*expected string, received number/
    ],
    ["a bad issuer URL", provider({ issuer: "not a url" }), "providers[0].issuer", /absolute URL/],
    [
      "an http issuer without allowInsecureRequests",
      provider({ issuer: "http://idp.local" }),
      "providers[0].issuer",
      /allowInsecureRequests: true/
    ],
    ["a bad duration", provider({ requestTimeout: "10s" }), "providers[0].requestTimeout", /"30 seconds"/],
    [
      "a plain secret instead of a reference",
      provider({
        clientAuthentication: { method: "client_secret_basic", clientSecret: "s3cret" }
      }),
      "providers[0].clientAuthentication.clientSecret",
      /./
    ],
    [
      "discovery none without a token endpoint",
      provider({
        discovery: "none",
        identityBinding: "any",
        endpoints: { authorization: "https://github.com/login/oauth/authorize" }
      }),
      "providers[0].endpoints.token",
      /discovery: none, so endpoints.token must be configured/
    ],
    [
      "an unknown replacedGrants",
      provider({ replacedGrants: "drop" }),
      "providers[0].replacedGrants",
      /revoke|keep/
    ],
    [
      "an unknown discovery",
      provider({ discovery: "oauth" }),
      "providers[0].discovery",
      /openid-configuration, oauth-authorization-server or none/
    ],
    [
      "a plain OAuth 2.0 provider with same-subject and no userinfo endpoint",
      provider({
        discovery: "none",
        endpoints: {
          authorization: "https://github.com/login/oauth/authorize",
          token: "https://github.com/login/oauth/access_token"
        }
      }),
      "providers[0].identityBinding",
      /issues no ID token.*endpoints.userinfo.*identityBinding: any/
    ],
    [
      "a reserved authorization parameter",
      provider({
        authorizationParameters: { access_type: "offline", redirect_uri: "https://evil.example" }
      }),
      "providers[0].authorizationParameters.redirect_uri",
      /may not set "redirect_uri", which the broker sets itself/
    ],
    [
      "an endpoint that is not a URL",
      provider({ endpoints: { userinfo: "api.github.com/user" } }),
      "providers[0].endpoints.userinfo",
      /absolute URL/
    ],
    [
      "a duplicate provider id",
      (c) => ({ ...c, providers: [...(c.providers as Array<object>), ...(c.providers as Array<object>)] }),
      "providers[1].id",
      /listed twice/
    ],
    [
      "a caller with a plain secret",
      (c) => ({
        ...c,
        callers: [{ id: "app", secretHash: "plain", providers: ["*"], subjects: ["*"], scopes: ["*"] }]
      }),
      "callers[0].secretHash",
      /store the secret hashed: run `printf '%s' "\$SECRET" \| token-broker hash-secret` \(the @token-broker\/cli package\)/
    ],
    [
      "a caller whose hash is below the scrypt floor",
      (c) => ({
        ...c,
        callers: [
          {
            id: "app",
            secretHash: WELL_FORMED_HASH.replace("p=5", "p=1"),
            providers: ["*"],
            subjects: ["*"],
            scopes: ["*"]
          }
        ]
      }),
      "callers[0].secretHash",
      /N=16384,r=8,p=1 are below the accepted floor.*hash the secret again with `token-broker hash-secret`/
    ],
    [
      "a caller whose hash is malformed",
      (c) => ({
        ...c,
        callers: [{ id: "app", secretHash: "scrypt$x", providers: ["*"], subjects: ["*"], scopes: ["*"] }]
      }),
      "callers[0].secretHash",
      /not of the form/
    ],
    [
      "a caller naming an unknown provider",
      (c) => ({
        ...c,
        callers: [
          { id: "app", secretHash: WELL_FORMED_HASH, providers: ["nope"], subjects: ["*"], scopes: ["*"] }
        ]
      }),
      "callers[0].providers[0]",
      /not a configured provider/
    ],
    [
      "token exchange without sessionTokens",
      (c) => ({
        ...c,
        callers: [
          {
            id: "app",
            secretHash: WELL_FORMED_HASH,
            providers: ["*"],
            subjects: ["*"],
            scopes: ["*"],
            tokenExchange: true
          }
        ]
      }),
      "callers[0].tokenExchange",
      /sessionTokens/
    ],
    [
      "an unknown Basic encoding",
      (c) => ({
        ...c,
        providers: [
          {
            ...(c.providers as Array<Record<string, unknown>>)[0],
            clientAuthentication: {
              method: "client_secret_basic",
              clientSecret: { env: "NOTES_SECRET" },
              encoding: "utf8"
            }
          }
        ]
      }),
      "providers[0].clientAuthentication.encoding",
      /"form" \(RFC 6749.*"plain"/
    ],
    [
      "a current key that is not in the ring",
      (c) => ({ ...c, keyRing: { kind: "local", keys: [{ kid: "k1", env: "KEY" }], current: "k2" } }),
      "keyRing.current",
      /not one of keyRing.keys/
    ]
  ]
  for (const [name, mutate, field, message] of cases) {
    it.effect(`${name} names ${field} and the fix`, () =>
      Effect.gen(function* () {
        const error = yield* failure(mutate(valid() as Record<string, unknown>))
        expect(error._tag).toBe("ConfigInvalid")
        expect(error.code).toBe("config_invalid")
        expect(error.field).toBe(field)
        expect(error.message).toContain(field)
        expect(error.message).toMatch(message)
      })
    )
  }

  it.effect("a missing environment variable names it", () =>
    Effect.gen(function* () {
      const error = yield* failure(valid(), { KEY })
      expect(error.field).toBe("providers[0].clientAuthentication.clientSecret")
      expect(error.message).toContain("NOTES_SECRET is not set")
    })
  )

  it.effect("a key of the wrong size says how to make one", () =>
    Effect.gen(function* () {
      const error = yield* failure(valid(), { ...env, KEY: "c2hvcnQ=" })
      expect(error.field).toBe("keyRing.keys[0]")
      expect(error.message).toMatch(/32 bytes.*randomBytes/)
    })
  )

  it.effect("key files must be 0600; relative paths resolve against the config's folder", () =>
    Effect.gen(function* () {
      const keyFile = join(dir, "key")
      yield* Effect.promise(() => writeFile(keyFile, `${KEY}\n`, { mode: 0o644 }))
      yield* Effect.promise(() => chmod(keyFile, 0o644))
      const input = { ...valid(), keyRing: { kind: "local", keys: [{ kid: "k1", file: "key" }] } }
      const open = yield* Effect.flip(parseConfig(input, env, { baseDir: dir }))
      expect(open.field).toBe("keyRing.keys[0]")
      expect(open.message).toContain(`chmod 600 ${keyFile}`)
      yield* Effect.promise(() => chmod(keyFile, 0o600))
      const config = yield* parseConfig(input, env, { baseDir: dir })
      expect(config.keyRing.kind === "local" && config.keyRing.keys[0]?.kid).toBe("k1")
    })
  )

  it.effect("sqlite paths resolve against the config's folder; postgres reads its URL from env", () =>
    Effect.gen(function* () {
      const sqlite = yield* parseConfig(
        { ...valid(), storage: { kind: "sqlite", filename: "grants.db" } },
        env,
        { baseDir: dir }
      )
      expect(sqlite.storage).toMatchObject({
        kind: "sqlite",
        filename: join(dir, "grants.db"),
        migrate: true
      })
      const pg = yield* parseConfig(
        { ...valid(), storage: { kind: "postgres", url: { env: "DB" } } },
        { ...env, DB: "postgres://u:p@db/x" }
      )
      expect(pg.storage.kind === "postgres" && Redacted.value(pg.storage.url)).toBe("postgres://u:p@db/x")
      expect(pg.storage).toMatchObject({ schema: "token_broker" })
    })
  )

  it.effect("mysql (MariaDB) storage reads its URL from env, keeps it redacted and checks its options", () =>
    Effect.gen(function* () {
      const config = yield* parseConfig(
        {
          ...valid(),
          storage: { kind: "mysql", url: { env: "DB" }, poolSize: 4, statementTimeout: "2 seconds" }
        },
        { ...env, DB: "mysql://tb:secret-password@db:3306/token_broker" }
      )
      expect(config.storage.kind === "mysql" && Redacted.value(config.storage.url)).toBe(
        "mysql://tb:secret-password@db:3306/token_broker"
      )
      expect(config.storage).toMatchObject({ kind: "mysql", poolSize: 4, migrate: true })
      expect(config.storage.kind === "mysql" && Duration.toMillis(config.storage.statementTimeout ?? 0)).toBe(
        2000
      )
      expect(JSON.stringify(config.storage)).not.toContain("secret-password")
      const badPool = yield* failure({
        ...valid(),
        storage: { kind: "mysql", url: { env: "DB" }, poolSize: 0 }
      })
      expect(badPool.message).toMatch(/storage.poolSize/)
      const noUrl = yield* failure({ ...valid(), storage: { kind: "mysql" } })
      expect(noUrl.message).toMatch(/storage.url/)
    })
  )

  it.effect("vault storage and transit key ring resolve their tokens; http needs the explicit flag", () =>
    Effect.gen(function* () {
      const vault = { address: "https://vault.example.com:8200", auth: { token: { env: "VAULT_TOKEN" } } }
      const config = yield* parseConfig(
        { ...valid(), storage: { kind: "vault", ...vault }, keyRing: { kind: "vault-transit", ...vault } },
        { ...env, VAULT_TOKEN: "hvs.test" }
      )
      expect(config.storage).toMatchObject({ kind: "vault", mount: "secret", prefix: "token-broker" })
      expect(config.keyRing).toMatchObject({ kind: "vault-transit", mount: "transit", key: "token-broker" })
      const insecure = yield* failure(
        { ...valid(), storage: { kind: "vault", ...vault, address: "http://127.0.0.1:8200" } },
        { ...env, VAULT_TOKEN: "hvs.test" }
      )
      expect(insecure.field).toBe("storage.address")
    })
  )

  it.effect("a remote token source reads its secret from env", () =>
    Effect.gen(function* () {
      const config = yield* parseConfig(
        {
          ...valid(),
          tokenSource: {
            kind: "remote",
            url: "https://broker.example.com/",
            clientId: "mcp",
            clientSecret: { env: "TS" }
          }
        },
        { ...env, TS: "remote-secret" }
      )
      expect(config.tokenSource.kind === "remote" && config.tokenSource.url).toBe(
        "https://broker.example.com"
      )
      // background tokens are kept in the app's process unless the file says not to
      expect(config.tokenSource.kind === "remote" && config.tokenSource.cacheTokens).toBe(true)
      const uncached = yield* parseConfig(
        {
          ...valid(),
          tokenSource: {
            kind: "remote",
            url: "https://broker.example.com/",
            clientId: "mcp",
            clientSecret: { env: "TS" },
            cacheTokens: false
          }
        },
        { ...env, TS: "remote-secret" }
      )
      expect(uncached.tokenSource.kind === "remote" && uncached.tokenSource.cacheTokens).toBe(false)
    })
  )
})

describe("loadConfig", () => {
  it.effect("reads YAML and JSON files; a syntax error names the file", () =>
    Effect.gen(function* () {
      const yamlPath = join(dir, "tb.yaml")
      yield* Effect.promise(() =>
        writeFile(
          yamlPath,
          `storage: { kind: sqlite, filename: g.db }
keyRing: { kind: local, keys: [{ kid: k1, env: KEY }] }
providers:
  - id: notes
    issuer: https://idp.example.com
    clientId: broker
    clientAuthentication: { method: none }
`
        )
      )
      const config = yield* loadConfig({ path: yamlPath, env })
      expect(config.path).toBe(yamlPath)
      expect(config.storage).toMatchObject({ filename: join(dir, "g.db") })
      const jsonPath = join(dir, "tb.json")
      yield* Effect.promise(() => writeFile(jsonPath, JSON.stringify(valid())))
      expect((yield* loadConfig({ path: jsonPath, env })).providers[0]?.id).toBe("notes")
      yield* Effect.promise(() => writeFile(join(dir, "bad.yaml"), "storage: [unclosed\n"))
      const bad = yield* Effect.flip(loadConfig({ path: join(dir, "bad.yaml"), env }))
      expect(bad.message).toMatch(/bad.yaml: not valid YAML/)
      const missing = yield* Effect.flip(loadConfig({ path: join(dir, "nope.yaml"), env }))
      expect(missing.message).toMatch(/cannot read the config file .*ENOENT/)
    })
  )
})

describe("brokerLayer", () => {
  it.live("builds the whole broker on the chosen storage", () =>
    Effect.gen(function* () {
      const config = yield* parseConfig(
        { ...valid(), storage: { kind: "sqlite", filename: "layer.db" } },
        env,
        { baseDir: dir }
      )
      const program = Effect.gen(function* () {
        const broker = yield* TokenBroker.TokenBroker
        const store = yield* GrantStore.GrantStore
        const keyRing = yield* KeyRing.KeyRing
        expect(store.capabilities.durable).toBe(true)
        expect(keyRing.currentKid).toBe("k1")
        const error = yield* Effect.flip(broker.backgroundToken({ subject: "u", provider: "notes" }))
        expect(error._tag).toBe("ConsentRequired")
      })
      yield* Effect.scoped(Effect.provide(program, Layer.fresh(brokerLayer(config))))
    })
  )

  it.live("builds the broker on MariaDB (the machine's server, a fresh database), and migrates it", () =>
    Effect.gen(function* () {
      const base = new URL(process.env.MARIADB_URL ?? "mysql://root@127.0.0.1:3306/test")
      const database = `tb_config_${randomBytes(6).toString("hex")}`
      base.pathname = `/${database}`
      const config = yield* parseConfig(
        { ...valid(), storage: { kind: "mysql", url: { env: "DB" }, migrate: false } },
        { ...env, DB: base.href }
      )
      expect(yield* migrateStorage(config.storage)).toEqual({
        backend: "mysql",
        from: 0,
        to: 3,
        applied: [1, 2, 3]
      })
      const program = Effect.gen(function* () {
        const store = yield* GrantStore.GrantStore
        expect(store.capabilities).toEqual({ crossProcessLeases: true, durable: true })
        const broker = yield* TokenBroker.TokenBroker
        const error = yield* Effect.flip(broker.backgroundToken({ subject: "u", provider: "notes" }))
        expect(error._tag).toBe("ConsentRequired")
      })
      yield* Effect.scoped(Effect.provide(program, Layer.fresh(brokerLayer(config)))).pipe(
        Effect.ensuring(
          Effect.promise(async () => {
            const conn = await Mysql.createConnection({ uri: base.href })
            await conn.query(`DROP DATABASE IF EXISTS \`${database}\``)
            await conn.end()
          })
        )
      )
    })
  )

  it.live("an unreachable PostgreSQL fails the layer with StorageUnavailable", () =>
    Effect.gen(function* () {
      const config = yield* parseConfig(
        { ...valid(), storage: { kind: "postgres", url: { env: "DB" }, connectTimeout: "1 second" } },
        { ...env, DB: "postgres://postgres@127.0.0.1:1/none" }
      )
      const error = yield* Effect.flip(Effect.scoped(Layer.build(brokerLayer(config))))
      expect(error._tag).toBe("StorageUnavailable")
    })
  )
})

describe("the published JSON Schema", () => {
  it("is up to date with the zod schema (run `pnpm --filter @token-broker/config schema`)", async () => {
    const committed = await readFile(new URL("../schema/token-broker.schema.json", import.meta.url), "utf8")
    expect(JSON.parse(committed)).toEqual(JSON.parse(jsonSchemaText()))
  })
})
