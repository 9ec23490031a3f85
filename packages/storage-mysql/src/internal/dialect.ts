import type { SqlError } from "@effect/sql/SqlError"
import { type SqlGrantStore, SqlMigrations } from "@token-broker/storage-sql"
import { Effect } from "effect"

export const backend = "mysql"

/** Whether the server answered with error `code` (mysql2's name of the error number). */
export const hasCode =
  (code: string) =>
  (error: SqlError): boolean =>
    (error.cause as { code?: unknown } | undefined)?.code === code

/** MariaDB's SQL where it differs from the shared driver's defaults; `timeout` in seconds. */
export const dialect = (timeout: number): SqlGrantStore.SqlDialect => ({
  backend,
  // the database server's clock (UTC, milliseconds): replicas on different machines agree on expiry
  leaseNow: (sql) => Effect.succeed(sql.literal("CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)")),
  // no UPDATE ... RETURNING: the affected-row count, which counts matched rows (CLIENT_FOUND_ROWS)
  matchedRows: (sql, write) =>
    Effect.map(sql`${write}`.raw, (result) => Number((result as { affectedRows?: number }).affectedRows)),
  // no ON CONFLICT DO NOTHING, and INSERT IGNORE would also hide a truncated key: a duplicate-key error
  insertIfAbsent: (sql, insert) =>
    sql`${insert}`.raw.pipe(
      Effect.as(true),
      Effect.catchIf(hasCode("ER_DUP_ENTRY"), () => Effect.succeed(false))
    ),
  upsertClause: (sql, _key, columns) =>
    sql.literal(`ON DUPLICATE KEY UPDATE ${columns.map((c) => `${c} = VALUES(${c})`).join(", ")}`),
  // per-statement settings whatever the server's defaults: a time limit, strict mode (a too-long key is
  // an error, never truncated onto another key) and UTC for the lease clock
  statementPrefix: `SET STATEMENT max_statement_time=${timeout}, innodb_lock_wait_timeout=${Math.ceil(timeout)},
    time_zone='+00:00', sql_mode='STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION' FOR`
})

/** MariaDB's named lock (`GET_LOCK`: server-wide, so named after the database), waiting up to 60 s. */
export const migrationLock = (database: string): SqlMigrations.MigrationLock => {
  const name = `token_broker_migrate:${database}`
  return SqlMigrations.sessionLock(
    backend,
    (sql) => Effect.map(sql<{ got: number }>`SELECT GET_LOCK(${name}, 60) AS got`, ([row]) => row?.got === 1),
    (sql) => sql`SELECT RELEASE_LOCK(${name})`
  )
}
