import { randomBytes } from "node:crypto"
import { mkdir, writeFile } from "node:fs/promises"
import { join } from "node:path"
import Mysql from "mysql2/promise"
import Pg from "pg"

/** Where the tests' grants live: a SQLite file in the test's folder, a fresh PostgreSQL schema or MariaDB database. */
export interface Backend {
  readonly name: "sqlite" | "postgres" | "mysql"
  /** The `storage:` section of a config in `dir`. */
  readonly storageYaml: (dir: string) => string
  /** Environment the config needs (the database URL). */
  readonly env: Readonly<Record<string, string>>
  readonly cleanup: () => Promise<void>
}

export const DATABASE_URL = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test"

export const sqliteBackend = (): Backend => ({
  name: "sqlite",
  storageYaml: () => ["storage:", "  kind: sqlite", "  filename: ./grants.db", "  migrate: false"].join("\n"),
  env: {},
  cleanup: async () => undefined
})

/** A schema of its own per run; fails (never skips) when PostgreSQL does not answer. */
export const postgresBackend = async (): Promise<Backend> => {
  const client = new Pg.Client({ connectionString: DATABASE_URL, connectionTimeoutMillis: 5000 })
  try {
    await client.connect()
    await client.end()
  } catch (error) {
    throw new Error(
      `PostgreSQL does not answer at ${DATABASE_URL.replace(/:[^:@/]*@/, ":***@")} (${(error as Error).message}); start it (see STACK.md) or set DATABASE_URL`
    )
  }
  const schema = `tb_cli_${randomBytes(5).toString("hex")}`
  return {
    name: "postgres",
    storageYaml: () =>
      [
        "storage:",
        "  kind: postgres",
        "  url: { env: TB_TEST_DATABASE_URL }",
        `  schema: ${schema}`,
        "  migrate: false"
      ].join("\n"),
    env: { TB_TEST_DATABASE_URL: DATABASE_URL },
    cleanup: async () => {
      const c = new Pg.Client({ connectionString: DATABASE_URL })
      await c.connect()
      await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
      await c.end()
    }
  }
}

export const MARIADB_URL = process.env.MARIADB_URL ?? "mysql://root@127.0.0.1:3306/test"

/** A database of its own per run (created by `migrate`); fails (never skips) when MariaDB does not answer. */
export const mysqlBackend = async (): Promise<Backend> => {
  const connect = async () => {
    try {
      return await Mysql.createConnection({ uri: MARIADB_URL, connectTimeout: 5000 })
    } catch (error) {
      throw new Error(
        `MariaDB does not answer at ${MARIADB_URL.replace(/:[^:@/]*@/, ":***@")} (${(error as Error).message}); start it (see STACK.md) or set MARIADB_URL`
      )
    }
  }
  await (await connect()).end()
  const database = `tb_cli_${randomBytes(5).toString("hex")}`
  const url = new URL(MARIADB_URL)
  url.pathname = `/${database}`
  return {
    name: "mysql",
    storageYaml: () =>
      ["storage:", "  kind: mysql", "  url: { env: TB_TEST_MARIADB_URL }", "  migrate: false"].join("\n"),
    env: { TB_TEST_MARIADB_URL: url.href },
    cleanup: async () => {
      const conn = await connect()
      await conn.query(`DROP DATABASE IF EXISTS \`${database}\``)
      await conn.end()
    }
  }
}

export interface ProviderSetup {
  readonly issuer: string
  readonly clientSecret: string
  /** Default `token-broker`. */
  readonly clientId?: string
  /** More lines of the provider's entry (YAML at the provider's indentation, without it). */
  readonly extra?: ReadonlyArray<string>
}

/** Writes keys/<kid>.key (0600) and a config using them; answers the config's path. */
export const writeConfig = async (
  dir: string,
  backend: Backend,
  provider: ProviderSetup,
  keys: ReadonlyArray<{ readonly kid: string; readonly material: string }>
): Promise<string> => {
  await mkdir(join(dir, "keys"), { recursive: true, mode: 0o700 })
  for (const key of keys) {
    await writeFile(join(dir, "keys", `${key.kid}.key`), `${key.material}\n`, { mode: 0o600 })
  }
  const path = join(dir, "token-broker.yaml")
  await writeFile(
    path,
    [
      "# written by the CLI tests",
      backend.storageYaml(dir),
      "keyRing:",
      "  kind: local",
      "  keys:",
      ...keys.flatMap((k) => [`    - kid: ${k.kid}`, `      file: ./keys/${k.kid}.key`]),
      "providers:",
      "  - id: dev-idp",
      `    issuer: ${provider.issuer}`,
      `    clientId: ${provider.clientId ?? "token-broker"}`,
      "    clientAuthentication:",
      "      method: client_secret_basic",
      "      clientSecret: { env: TB_TEST_CLIENT_SECRET }",
      "    scopes: [notes:read, notes:write]",
      "    allowInsecureRequests: true",
      ...(provider.extra ?? []).map((line) => `    ${line}`),
      ""
    ].join("\n"),
    { mode: 0o600 }
  )
  return path
}

export const newKeyMaterial = (): string => randomBytes(32).toString("base64")

/** A TCP port on 127.0.0.1 that nothing listens on (for a refused connection); never to be bound. */
export const freePort = async (): Promise<number> => {
  const { createServer } = await import("node:net")
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      server.close(() => resolve(typeof address === "object" && address !== null ? address.port : 0))
    })
  })
}
