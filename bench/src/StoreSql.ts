import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as MysqlClient from "@effect/sql-mysql2/MysqlClient"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import type { GrantRecord } from "@token-broker/core"
import { Effect, type Layer, Redacted } from "effect"
import type { StoreSpec } from "./StoreSpec.js"

/**
 * Direct SQL access to the tables of a SQL store (the schema of storage-sqlite, storage-postgres and
 * storage-mysql),
 * for what the GrantStore port deliberately does not offer: bulk loading a benchmark's million rows,
 * reading a lease row to see who holds it until when, and dropping a test schema. Never used to
 * change what the broker under test reads, except where a test says so.
 */
export type SqlStoreSpec = Extract<StoreSpec, { kind: "sqlite" | "postgres" | "mysql" }>

const SCHEMA = /^[a-z_][a-z0-9_]{0,62}$/

/** `grants` / `leases`, qualified by the PostgreSQL schema. */
export const tableName = (spec: SqlStoreSpec, table: "grants" | "leases"): string => {
  switch (spec.kind) {
    case "sqlite":
    case "mysql":
      // MariaDB: the URL's database holds the tables
      return table
    case "postgres":
      if (!SCHEMA.test(spec.options.schema)) throw new Error(`unsafe schema name ${spec.options.schema}`)
      return `${spec.options.schema}.${table}`
  }
}

/** A plain SQL client on the spec's database (one connection or a small pool). */
export const sqlLayer = (spec: SqlStoreSpec): Layer.Layer<SqlClient.SqlClient, unknown> => {
  switch (spec.kind) {
    case "sqlite":
      return SqliteClient.layer({ filename: spec.options.filename })
    case "postgres":
      return PgClient.layer({
        url: Redacted.make(spec.options.url),
        maxConnections: 2,
        connectTimeout: "5 seconds"
      })
    case "mysql":
      return MysqlClient.layer({ url: Redacted.make(spec.options.url), maxConnections: 2 })
  }
}

/** Runs `effect` with a SQL client on the spec's database, then closes it. */
export const withSql = <A, E>(
  spec: SqlStoreSpec,
  effect: Effect.Effect<A, E, SqlClient.SqlClient>
): Promise<A> => Effect.runPromise(Effect.provide(effect, sqlLayer(spec)))

export interface LeaseRow {
  readonly owner: string
  /** Epoch ms, by the lease clock (SQLite: the process clock; PostgreSQL: the server's clock). */
  readonly expiresAt: number
}

/** The lease row `name`, if any (held or expired). */
export const readLease = (
  spec: SqlStoreSpec,
  name: string
): Effect.Effect<LeaseRow | undefined, SqlError, SqlClient.SqlClient> =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{
      owner: string
      expires_at: number | string
    }>`SELECT owner, expires_at FROM ${sql.literal(tableName(spec, "leases"))} WHERE name = ${name}`
    const row = rows[0]
    return row === undefined ? undefined : { owner: row.owner, expiresAt: Number(row.expires_at) }
  })

/** The lease clock's current time, as the store measures lease expiry. */
export const leaseClockNow = (spec: SqlStoreSpec): Effect.Effect<number, SqlError, SqlClient.SqlClient> => {
  switch (spec.kind) {
    case "sqlite":
      return Effect.sync(() => Date.now())
    case "postgres":
      return Effect.flatMap(SqlClient.SqlClient, (sql) =>
        Effect.map(
          sql<{ now: string }>`SELECT (floor(extract(epoch from clock_timestamp()) * 1000))::bigint AS now`,
          (rows) => Number(rows[0]?.now)
        )
      )
    case "mysql":
      return Effect.flatMap(SqlClient.SqlClient, (sql) =>
        Effect.map(
          sql<{
            now: number | string
          }>`SET STATEMENT time_zone = '+00:00' FOR SELECT CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED) AS now`,
          (rows) => Number(rows[0]?.now)
        )
      )
  }
}

/** The row of a grant as storage-sql writes it: key columns, version, status, and the rest as JSON. */
const rowOf = (record: GrantRecord) => {
  const { tenant, subject, provider, version, status, ...rest } = record
  return [tenant, subject, provider, version, status, record.updatedAt, JSON.stringify(rest)] as const
}

/**
 * Inserts records with one statement per batch, the bulk path of the benchmark's loader: the batch
 * travels as one JSON parameter (an array of rows) that the database unpacks itself (SQLite
 * `json_each`, PostgreSQL `json_array_elements`, MariaDB `JSON_TABLE`). The encoding is storage-sql's; the benchmark checks
 * it by reading a row back through the store.
 */
export const insertBatch = (
  spec: SqlStoreSpec,
  records: ReadonlyArray<GrantRecord>
): Effect.Effect<void, SqlError, SqlClient.SqlClient> =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const rows = JSON.stringify(records.map(rowOf))
    const insert = `INSERT INTO ${tableName(spec, "grants")} (tenant, subject, provider, version, status, updated_at, data)`
    switch (spec.kind) {
      case "sqlite":
        yield* sql.unsafe(
          `${insert}
           SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, value ->> 6
           FROM json_each(?)`,
          [rows]
        )
        return
      case "postgres":
        yield* sql.unsafe(
          `${insert}
           SELECT r ->> 0, r ->> 1, r ->> 2, (r ->> 3)::int, r ->> 4, (r ->> 5)::bigint, r ->> 6
           FROM json_array_elements($1::json) AS r`,
          [rows]
        )
        return
      case "mysql":
        yield* sql.unsafe(
          `${insert}
           SELECT * FROM JSON_TABLE(?, '$[*]' COLUMNS (
             tenant VARCHAR(255) PATH '$[0]', subject VARCHAR(255) PATH '$[1]', provider VARCHAR(255) PATH '$[2]',
             version INT PATH '$[3]', status VARCHAR(32) PATH '$[4]', updated_at BIGINT PATH '$[5]',
             data MEDIUMTEXT PATH '$[6]')) AS r`,
          [rows]
        )
        return
    }
  })

/**
 * After a bulk load, what a database left alone would soon do by itself: refresh the planner's
 * statistics (ANALYZE) and write the load out of the log (a checkpoint), so that measurements after
 * the load are not taken during the load's aftermath. The checkpoint needs a superuser on PostgreSQL;
 * without one it is left to the server.
 */
export const settle = (spec: SqlStoreSpec): Effect.Effect<void, SqlError, SqlClient.SqlClient> =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql.unsafe(`${spec.kind === "mysql" ? "ANALYZE TABLE" : "ANALYZE"} ${tableName(spec, "grants")}`)
    switch (spec.kind) {
      case "sqlite":
        yield* sql.unsafe("PRAGMA wal_checkpoint(TRUNCATE)")
        return
      case "postgres":
        yield* sql.unsafe("CHECKPOINT").pipe(Effect.ignore)
        return
      case "mysql":
        // InnoDB flushes by itself; nothing a client can ask for short of SUPER
        return
    }
  })

const DATABASE = /^[A-Za-z0-9_]{1,64}$/

/**
 * Drops a PostgreSQL schema or a MariaDB database with everything in it (a no-op for SQLite: delete
 * the file).
 */
export const dropSchema = (spec: SqlStoreSpec): Effect.Effect<void, SqlError, SqlClient.SqlClient> =>
  spec.kind === "mysql"
    ? Effect.flatMap(SqlClient.SqlClient, (sql) => {
        const database = new URL(spec.options.url).pathname.slice(1)
        if (!DATABASE.test(database)) return Effect.dieMessage(`unsafe database name ${database}`)
        return Effect.asVoid(sql.unsafe(`DROP DATABASE IF EXISTS \`${database}\``))
      })
    : spec.kind === "postgres"
      ? Effect.flatMap(SqlClient.SqlClient, (sql) =>
          Effect.asVoid(
            sql.unsafe(`DROP SCHEMA IF EXISTS ${tableName(spec, "grants").split(".")[0]} CASCADE`)
          )
        )
      : Effect.void
