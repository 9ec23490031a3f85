import { randomBytes } from "node:crypto"
import Pg from "pg"

/** The PostgreSQL the tests use: `DATABASE_URL`, else the machine's server (trust auth, database `test`). */
export const databaseUrl = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test"

/** A schema name no other run uses. */
export const freshSchema = (label = "tb_test"): string => `${label}_${randomBytes(6).toString("hex")}`

/** Runs `use` with a plain `pg` client on `url`; fails with a clear message when the server does not answer. */
export const withClient = async <A>(url: string, use: (client: Pg.Client) => Promise<A>): Promise<A> => {
  const client = new Pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 })
  try {
    await client.connect()
  } catch (cause) {
    throw new Error(
      `PostgreSQL does not answer at ${url.replace(/\/\/[^@]*@/, "//")} (set DATABASE_URL, or start the server): ${String(cause)}`
    )
  }
  try {
    return await use(client)
  } finally {
    await client.end()
  }
}

export const dropSchema = (url: string, schema: string): Promise<void> =>
  withClient(url, async (client) => {
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
  })

/** Every row of the store's tables as text. */
export const dumpSchema = (url: string, schema: string): Promise<string> =>
  withClient(url, async (client) => {
    const parts: Array<string> = []
    for (const table of ["grants", "pending_authorizations", "leases", "schema_migrations"]) {
      const result = await client.query(`SELECT t::text AS row FROM ${schema}.${table} t`)
      parts.push(...result.rows.map((r: { row: string }) => r.row))
    }
    return parts.join("\n")
  })
