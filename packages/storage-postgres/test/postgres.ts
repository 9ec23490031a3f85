import { randomBytes } from "node:crypto"
import { withClient } from "../src/testing.js"

export { withClient }

/** The PostgreSQL the tests use: `DATABASE_URL`, else the machine's server (trust auth, database `test`). */
export const databaseUrl = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test"

/** A schema name no other run uses. */
export const freshSchema = (label = "tb_test"): string => `${label}_${randomBytes(6).toString("hex")}`

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
