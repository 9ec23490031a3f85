import { chmodSync, closeSync, existsSync, openSync } from "node:fs"
import * as SqlClient from "@effect/sql/SqlClient"
import type { Connection } from "@effect/sql/SqlConnection"
import type { SqlError } from "@effect/sql/SqlError"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import { GrantStore, StorageUnavailable } from "@token-broker/core"
import { SqlGrantStore, SqlMigrations } from "@token-broker/storage-sql"
import { Context, Duration, Effect, Layer, Scope } from "effect"
import { migrations } from "./internal/migrations.js"

export interface SqliteGrantStoreOptions {
  /** Path of the database file (created when missing). Every process sharing the store opens the same file. */
  readonly filename: string
  /** Apply pending migrations when the layer starts (default `false`: run `migrate` explicitly). */
  readonly migrate?: boolean | undefined
  /** How long a write waits for another process's write lock before failing (default 5 seconds). */
  readonly busyTimeout?: Duration.DurationInput | undefined
}

/** SQLite leases exclude every process that opens the same file; data lives in the file. */
export const capabilities: GrantStore.GrantStoreCapabilities = { crossProcessLeases: true, durable: true }

/** The latest schema version this release knows. */
export const schemaVersion = SqlMigrations.latestVersion(migrations)

const backend = "sqlite"

const dialect: SqlGrantStore.SqlDialect = {
  backend,
  // one machine: the process clock is the lease clock
  leaseNow: (sql) =>
    Effect.map(
      Effect.clockWith((clock) => clock.currentTimeMillis),
      (now) => sql`${now}`
    )
}

const migrationLock: SqlMigrations.MigrationLock = {
  backend,
  withLock: (sql, effect) => {
    const run =
      (statement: string) =>
      (conn: Connection): Effect.Effect<void, SqlError> =>
        Effect.asVoid(conn.executeUnprepared(statement, [], undefined))
    return SqlClient.makeWithTransaction({
      transactionTag: SqlClient.TransactionConnection,
      spanAttributes: [],
      acquireConnection: Effect.flatMap(Scope.make(), (scope) =>
        Effect.map(Scope.extend(sql.reserve, scope), (conn) => [scope, conn] as const)
      ),
      // IMMEDIATE takes the write lock at once: a second migrating process waits (busy timeout) instead
      // of reading a schema version that is about to change
      begin: run("BEGIN IMMEDIATE"),
      savepoint: (conn, id) => run(`SAVEPOINT effect_sql_${id}`)(conn),
      commit: run("COMMIT"),
      rollback: run("ROLLBACK"),
      rollbackSavepoint: (conn, id) => run(`ROLLBACK TO SAVEPOINT effect_sql_${id}`)(conn)
    })(effect)
  }
}

const tableExists = (sql: SqlClient.SqlClient) =>
  Effect.map(
    sql`SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'`,
    (rows) => rows.length > 0
  )

const store: SqlGrantStore.StoreOptions = { dialect, capabilities, migrations, tableExists }

/**
 * The database holds encrypted grants and pending consents: it is created 0600, and an existing file (and
 * its WAL and SHM) is tightened to 0600. SQLite creates the WAL and SHM files with the database file's
 * permissions, so they follow.
 */
const ownerOnly = (filename: string) =>
  Effect.sync(() => {
    if (filename === ":memory:" || filename.length === 0 || filename.startsWith("file:")) return
    closeSync(openSync(filename, "a", 0o600))
    for (const file of [filename, `${filename}-wal`, `${filename}-shm`]) {
      if (existsSync(file)) chmodSync(file, 0o600)
    }
  })

/** Opens the database file (0600): WAL journal, `synchronous = NORMAL`, a busy timeout. */
const open = (
  options: SqliteGrantStoreOptions
): Effect.Effect<SqlClient.SqlClient, StorageUnavailable, Scope.Scope> =>
  Effect.gen(function* () {
    yield* ownerOnly(options.filename)
    const context = yield* Layer.build(SqliteClient.layer({ filename: options.filename }))
    const sql = Context.get(context, SqlClient.SqlClient)
    const busyMillis = Math.round(
      Duration.toMillis(Duration.decode(options.busyTimeout ?? Duration.seconds(5)))
    )
    yield* sql.unsafe(`PRAGMA busy_timeout = ${busyMillis}`)
    yield* sql.unsafe("PRAGMA synchronous = NORMAL")
    return sql
  }).pipe(
    Effect.catchAllDefect((defect) =>
      Effect.fail(
        new StorageUnavailable({
          operation: "open",
          message: `sqlite storage could not open the database file: ${defect instanceof Error ? defect.message : "unknown error"}`
        })
      )
    ),
    Effect.catchAll((error) =>
      error._tag === "StorageUnavailable"
        ? Effect.fail(error)
        : Effect.fail(
            new StorageUnavailable({
              operation: "open",
              message: "sqlite storage could not configure the database file"
            })
          )
    )
  )

/**
 * Brings the database file to the latest schema version (or `toVersion`). Safe to run from several
 * processes at once and again on a current database (a no-op).
 */
export const migrate: SqlMigrations.Migrate<SqliteGrantStoreOptions> = (options) =>
  Effect.scoped(
    Effect.flatMap(open(options), (sql) =>
      SqlMigrations.runMigrations(sql, migrationLock, migrations, options)
    )
  )

/** The GrantStore service on a SQLite file; the file is closed when the scope closes. */
export const make = (
  options: SqliteGrantStoreOptions
): Effect.Effect<SqlGrantStore.Store, StorageUnavailable, Scope.Scope> =>
  Effect.flatMap(open(options), (sql) =>
    SqlGrantStore.makeStore(sql, store, options.migrate === true ? migrationLock : undefined)
  )

/** The GrantStore on a SQLite file. Options are plain data, so a child process can build the same layer. */
export const layer = (
  options: SqliteGrantStoreOptions
): Layer.Layer<GrantStore.GrantStore, StorageUnavailable> =>
  Layer.scoped(GrantStore.GrantStore, make(options))
