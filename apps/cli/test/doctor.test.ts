import { writeFile } from "node:fs/promises"
import { join } from "node:path"
import { type DevIdp, startDevIdp } from "@token-broker/dev-idp"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Backend, freePort, newKeyMaterial, sqliteBackend, writeConfig } from "./support/backends.js"
import { runCli } from "./support/cli.js"
import { decode, env, seed } from "./support/grants.js"
import { temporaryDirectory } from "./support/tempDir.js"

/** Runs `use` against a fresh dev-idp, closed afterwards whatever happens. */
const withDevIdp = async (use: (idp: DevIdp) => Promise<void>): Promise<void> => {
  const idp = await startDevIdp()
  try {
    await use(idp)
  } finally {
    await idp.close()
  }
}

/** A dev-idp serving plain OAuth 2.0 with this discovery, for the enclosing describe block (a getter). */
const plainOAuthIdp = (metadata: "none" | "oauth-authorization-server"): (() => DevIdp) => {
  let idp: DevIdp | undefined
  beforeAll(async () => {
    idp = await startDevIdp({ plainOAuth: { metadata } })
  })
  afterAll(async () => {
    await idp?.close()
  })
  return () => {
    if (idp === undefined) throw new Error("the dev-idp is started in the describe block's beforeAll")
    return idp
  }
}

/** doctor names each fault, says how to fix it, and exits 1. */
describe("doctor names the fault", () => {
  const dir = temporaryDirectory("tb-cli-doctor-")

  const setup = async (name: string, backend: Backend, issuer: string, material = newKeyMaterial()) => {
    const folder = join(dir(), name)
    const config = await writeConfig(folder, backend, { issuer, clientSecret: "" }, [{ kid: "k1", material }])
    return { folder, config }
  }

  it("when the provider is down", async () => {
    const idp = await startDevIdp()
    const issuer = idp.issuer
    await idp.close()
    const backend = sqliteBackend()
    const { config } = await setup("provider-down", backend, issuer)
    expect((await runCli(["migrate", "--config", config], { env: env(backend) })).code).toBe(0)
    const result = await runCli(["doctor", "--config", config], { env: env(backend) })
    expect(result.code).toBe(1)
    expect(result.stdout).toMatch(/✔ storage: /)
    expect(result.stdout).toMatch(new RegExp(`✖ provider dev-idp: discovery at ${issuer} failed`))
    expect(result.stdout).toMatch(/fix: check that .*\/\.well-known\/openid-configuration answers/)
    expect(result.stderr).toMatch(/error: 1 check failed/)
    const json = JSON.parse(
      (await runCli(["doctor", "--json", "--config", config], { env: env(backend) })).stdout
    )
    expect(json.ok).toBe(false)
    expect(
      json.checks.filter((c: { status: string }) => c.status === "fail").map((c: { name: string }) => c.name)
    ).toEqual(["provider dev-idp"])
  })

  const databasesDown = [
    {
      title: "when the database is down",
      kind: "postgres",
      variable: "TB_TEST_DATABASE_URL",
      url: (port: number) => `postgres://postgres:s3cret-pw@127.0.0.1:${port}/test`,
      storage: (port: number) =>
        `✖ storage: postgres postgres://postgres@127.0.0.1:${port}/test .*ECONNREFUSED`,
      fix: /fix: check that PostgreSQL runs/
    },
    {
      title: "when MariaDB is down: the storage check names it and the fix, never the password",
      kind: "mysql",
      variable: "TB_TEST_MARIADB_URL",
      url: (port: number) => `mysql://root:s3cret-pw@127.0.0.1:${port}/token_broker`,
      storage: (port: number) =>
        `✖ storage: mysql mysql://root@127.0.0.1:${port}/token_broker: .*ECONNREFUSED`,
      fix: /fix: check that MariaDB runs/
    }
  ] as const
  for (const { title, kind, variable, url, storage, fix } of databasesDown) {
    it(title, async () => {
      await withDevIdp(async (idp) => {
        const closed = await freePort()
        const backend: Backend = {
          name: kind,
          storageYaml: () =>
            [
              "storage:",
              `  kind: ${kind}`,
              `  url: { env: ${variable} }`,
              "  connectTimeout: 2 seconds"
            ].join("\n"),
          env: { [variable]: url(closed) },
          cleanup: async () => undefined
        }
        const { config } = await setup(`${kind}-down`, backend, idp.issuer)
        const result = await runCli(["doctor", "--config", config], { env: env(backend) })
        expect(result.code, title).toBe(1)
        expect(result.stdout).toMatch(new RegExp(storage(closed)))
        expect(result.stdout).toMatch(fix)
        expect(result.stdout).toMatch(/- migrations: storage unreachable/)
        expect(result.stdout).toMatch(/✔ provider dev-idp/)
        // the password in the URL is never printed
        expect(result.stdout + result.stderr).not.toContain("s3cret-pw")
      })
    })
  }

  it("when the key is wrong, and keys rotate leaves those grants untouched", async () => {
    await withDevIdp(async (idp) => {
      const backend = sqliteBackend()
      const original = newKeyMaterial()
      const { folder, config } = await setup("wrong-key", backend, idp.issuer, original)
      expect((await runCli(["migrate", "--config", config], { env: env(backend) })).code).toBe(0)
      await seed(config, backend, decode("k1", original), 3)
      const secret = { ...env(backend), TB_TEST_CLIENT_SECRET: idp.client("token-broker").clientSecret ?? "" }
      expect((await runCli(["doctor", "--config", config], { env: secret })).code).toBe(0)
      // the configured key is replaced by another one
      await writeFile(join(folder, "keys", "k1.key"), `${newKeyMaterial()}\n`, { mode: 0o600 })
      const result = await runCli(["doctor", "--config", config], { env: env(backend) })
      expect(result.code).toBe(1)
      expect(result.stdout).toMatch(/✖ keys: 3 of 3 stored grants do not decrypt under key "k1"/)
      expect(result.stdout).toMatch(
        /fix: the key material configured for "k1" is not the one these grants were written with/
      )
      expect(result.stdout).toMatch(/✔ storage: /)
      const show = await runCli(["token", "-s", "user-00000", "-p", "dev-idp", "--config", config], {
        env: env(backend)
      })
      expect(show.code).toBe(1)
      expect(show.stderr).toMatch(/does not authenticate/)
      expect((await runCli(["keys", "add", "--config", config], { env: env(backend) })).code).toBe(0)
      const rotate = await runCli(["keys", "rotate", "--config", config], { env: env(backend) })
      expect(rotate.code).toBe(1)
      expect(rotate.stderr).toMatch(/3 grants could not be decrypted and were left as they are/)
    })
  })

  it("when the client secret is wrong (and, as a control, passes with the right one)", async () => {
    await withDevIdp(async (idp) => {
      const backend = sqliteBackend()
      const { config } = await setup("wrong-secret", backend, idp.issuer)
      expect((await runCli(["migrate", "--config", config], { env: env(backend) })).code).toBe(0)
      const right = { ...env(backend), TB_TEST_CLIENT_SECRET: idp.client("token-broker").clientSecret ?? "" }
      const passing = await runCli(["doctor", "--config", config], { env: right })
      expect(passing.code).toBe(0)
      expect(passing.stdout).toMatch(
        /✔ provider dev-idp credentials: Basic credentials accepted form-encoded \(RFC 6749\) \(configured\) and plain: revocation of a random token answered 200/
      )
      expect(passing.stdout).toMatch(/✔ provider dev-idp features: the metadata offers what the config uses/)
      const wrong = { ...env(backend), TB_TEST_CLIENT_SECRET: "not-the-secret" }
      const result = await runCli(["doctor", "--config", config], { env: wrong })
      expect(result.code).toBe(1)
      expect(result.stdout).toMatch(
        /✖ provider dev-idp credentials: the provider refuses the client credentials: revocation answered invalid_client \(HTTP 401\)/
      )
      expect(result.stdout).toMatch(/fix: check providers\[0\]\.clientId and the client's credentials/)
      expect(result.stdout + result.stderr).not.toContain("not-the-secret")
    })
  })

  /** dev-idp as GitHub is configured: no ID token, no offline scope, the account from GET /user. */
  const plainProvider = (
    idp: DevIdp,
    discovery: "none" | "oauth-authorization-server",
    endpoints: ReadonlyArray<"authorization" | "token" | "revocation">,
    more: ReadonlyArray<string> = ["offlineAccessScope: null"]
  ) => [
    `discovery: ${discovery}`,
    "endpoints:",
    ...endpoints.map((endpoint) => `  ${endpoint}: ${idp.endpoints[endpoint]}`),
    `  userinfo: ${idp.endpoints.userinfo}`,
    "userinfoSubjectField: id",
    ...more
  ]

  const runDoctor = async (idp: DevIdp, name: string, extra: ReadonlyArray<string>, secret?: string) => {
    const backend = sqliteBackend()
    const folder = join(dir(), name)
    const config = await writeConfig(folder, backend, { issuer: idp.issuer, clientSecret: "", extra }, [
      { kid: "k1", material: newKeyMaterial() }
    ])
    expect((await runCli(["migrate", "--config", config], { env: env(backend) })).code).toBe(0)
    const clientSecret = secret ?? idp.client("token-broker").clientSecret ?? ""
    return runCli(["doctor", "--config", config], {
      env: { ...env(backend), TB_TEST_CLIENT_SECRET: clientSecret }
    })
  }

  describe("a plain OAuth 2.0 provider with discovery: none", () => {
    const idp = plainOAuthIdp("none")

    it("proves the credentials at the configured revocation endpoint and says there is no metadata to check features against (control: a wrong secret fails)", async () => {
      const extra = plainProvider(idp(), "none", ["authorization", "token", "revocation"])
      const result = await runDoctor(idp(), "plain-none", extra)
      expect(result.stdout).toMatch(
        new RegExp(
          `✔ provider dev-idp(): discovery: none, no metadata is read; the configured endpoints: authorization ${idp().endpoints.authorization}, token ${idp().endpoints.token}, revocation ${idp().endpoints.revocation}`
        )
      )
      expect(result.stdout).toMatch(
        /✔ provider dev-idp() credentials: Basic credentials accepted .*: revocation of a random token answered 200/
      )
      expect(result.stdout).toMatch(
        /- provider dev-idp() features: discovery: none, so there is no metadata to check features against \(refresh\)/
      )
      // nothing read from a discovery document the provider does not serve
      expect(result.stdout).not.toMatch(/openid-configuration|could not be read/)
      expect(result.stdout).toMatch(/✔ clock: /)
      expect(result.code).toBe(0)
      const wrong = await runDoctor(idp(), "plain-none-wrong", extra, "not-the-secret")
      expect(wrong.code).toBe(1)
      expect(wrong.stdout).toMatch(
        /✖ provider dev-idp() credentials: the provider refuses the client credentials: revocation answered invalid_client/
      )
      expect(wrong.stdout + wrong.stderr).not.toContain("not-the-secret")
    })

    it("without endpoints.revocation proves the credentials by a refresh at the configured token endpoint, warns that revocation stays local, and repeats core's token exchange warning", async () => {
      idp().counters.reset()
      const result = await runDoctor(idp(), "plain-none-no-revocation", [
        ...plainProvider(idp(), "none", ["authorization", "token"]),
        "tokenExchange: {}"
      ])
      expect(result.stdout).toMatch(
        /✔ provider dev-idp() credentials: Basic credentials accepted .*: a refresh with a random refresh token answered invalid_grant/
      )
      expect(idp().counters.count({ grantType: "refresh_token" })).toBeGreaterThan(0)
      expect(result.stdout).toMatch(
        /! provider dev-idp() features: no revocation endpoint \(no providers\[0\]\.endpoints\.revocation\): revoking a grant deletes it here only/
      )
      expect(result.stdout).toMatch(
        /! provider dev-idp() features: provider "dev-idp()" is configured for token exchange, but its metadata has no grant_types_supported/
      )
      // warnings do not fail
      expect(result.code).toBe(0)
    })
  })

  describe("a plain OAuth 2.0 provider with discovery: oauth-authorization-server", () => {
    const idp = plainOAuthIdp("oauth-authorization-server")

    it("reads the RFC 8414 metadata and checks the features against it", async () => {
      const result = await runDoctor(
        idp(),
        "plain-8414",
        plainProvider(idp(), "oauth-authorization-server", [])
      )
      expect(result.stdout).toMatch(
        new RegExp(
          `✔ provider dev-idp(): RFC 8414 metadata at ${idp().issuer}/\\.well-known/oauth-authorization-server answers`
        )
      )
      expect(result.stdout).toMatch(
        /✔ provider dev-idp() credentials: Basic credentials accepted .*: revocation of a random token answered 200/
      )
      expect(result.stdout).toMatch(
        /✔ provider dev-idp() features: the metadata offers what the config uses \(refresh, revocation\)/
      )
      expect(result.code).toBe(0)
    })

    it("fails token exchange the metadata does not list (core's start-up rule) and an offline scope it does not support", async () => {
      const result = await runDoctor(
        idp(),
        "plain-8414-faults",
        plainProvider(idp(), "oauth-authorization-server", [], ["tokenExchange: {}"])
      )
      expect(result.code).toBe(1)
      expect(result.stdout).toMatch(
        /✖ provider dev-idp() features: provider "dev-idp()" is configured for token exchange, but its metadata's grant_types_supported does not list urn:ietf:params:oauth:grant-type:token-exchange/
      )
      expect(result.stdout).toMatch(/fix: remove providers\[0\]\.tokenExchange/)
      expect(result.stdout).toMatch(
        /✖ provider dev-idp() features: every consent asks offline_access \(offlineAccessScope\) but scopes_supported \(notes:read, notes:write\) does not list it/
      )
      expect(result.stdout).toMatch(/fix: set providers\[0\]\.offlineAccessScope /)
      expect(result.stderr).toMatch(/error: 2 checks failed/)
    })
  })

  it("when the config is missing or invalid", async () => {
    const missing = await runCli(["doctor", "--config", join(dir(), "none.yaml")])
    expect(missing.code).toBe(1)
    expect(missing.stdout).toMatch(/✖ config: cannot read the config file/)
    expect(missing.stdout).toMatch(/fix: create one with token-broker init/)
  })
})
