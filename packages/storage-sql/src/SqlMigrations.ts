import type * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import { StorageUnavailable } from "@token-broker/core"
import { Effect } from "effect"
import { storageUnavailable } from "./internal/errors.js"

/** One forward step of a store's schema. Applied once, in order, inside the migration transaction. */
export interface Migration {
  readonly version: number
  readonly name: string
  readonly up: (sql: SqlClient.SqlClient) => Effect.Effect<void, SqlError>
}

/** A migration step of plain statements run in order (DDL, which needs no parameters). */
export const statements =
  (...ddl: ReadonlyArray<string>): Migration["up"] =>
  (sql) =>
    Effect.forEach(ddl, (statement) => sql.unsafe(statement), { discard: true })

/** How a backend serializes migrations between processes. */
export interface MigrationLock {
  /** Backend name for error messages. */
  readonly backend: string
  /**
   * Runs `effect` in one transaction that no other migrating process can run at the same time
   * (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: a transaction-scoped advisory lock).
   */
  readonly withLock: <A, E, R>(
    sql: SqlClient.SqlClient,
    effect: Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | SqlError, R>
}

export interface MigrationResult {
  /** The schema version before and after. */
  readonly from: number
  readonly to: number
  /** Versions applied by this call, in order (empty when the schema was already current). */
  readonly applied: ReadonlyArray<number>
}

export interface MigrateOptions {
  /** Stop at this version (default: the latest). For tests of upgrades from an older schema. */
  readonly toVersion?: number | undefined
}

/**
 * An adapter's `migrate`: brings the database its `options` name to the latest schema version (or
 * `toVersion`); `E`, how else the options can be refused (e.g. `ConfigInvalid`).
 */
export type Migrate<Options, E = never> = (
  options: Options & MigrateOptions
) => Effect.Effect<MigrationResult, StorageUnavailable | E>

/** The version of the newest step: the schema version a release of an adapter needs. */
export const latestVersion = (migrations: ReadonlyArray<Migration>): number =>
  migrations.reduce((max, m) => Math.max(max, m.version), 0)

/**
 * Applies every migration newer than the database's schema version, in one transaction under the
 * backend's migration lock, recording each in `schema_migrations`. Running it again is a no-op; several
 * processes may run it at once. A database newer than this code is left alone and reported as an error.
 */
export const runMigrations = (
  sql: SqlClient.SqlClient,
  lock: MigrationLock,
  migrations: ReadonlyArray<Migration>,
  options: MigrateOptions = {}
): Effect.Effect<MigrationResult, StorageUnavailable> => {
  const target = options.toVersion ?? latestVersion(migrations)
  return lock
    .withLock(
      sql,
      Effect.gen(function* () {
        yield* sql`CREATE TABLE IF NOT EXISTS schema_migrations (
          version INTEGER PRIMARY KEY,
          name TEXT NOT NULL,
          applied_at BIGINT NOT NULL
        )`
        const rows = yield* sql<{ version: number | string }>`SELECT version FROM schema_migrations`
        const from = rows.reduce((max, row) => Math.max(max, Number(row.version)), 0)
        if (from > latestVersion(migrations)) {
          return yield* new StorageUnavailable({
            operation: "migrate",
            message: `The ${lock.backend} database is at schema version ${from}, newer than this release knows (${latestVersion(migrations)}): upgrade token-broker`
          })
        }
        const applied: Array<number> = []
        for (const migration of [...migrations].sort((a, b) => a.version - b.version)) {
          if (migration.version <= from || migration.version > target) continue
          yield* migration.up(sql)
          yield* sql`INSERT INTO schema_migrations (version, name, applied_at)
            VALUES (${migration.version}, ${migration.name}, ${Date.now()})`
          applied.push(migration.version)
        }
        return { from, to: Math.max(from, ...applied), applied }
      })
    )
    .pipe(Effect.mapError(storageUnavailable(lock.backend, "migrate")))
}

/**
 * The schema version of the database (0 when never migrated). A layer checks it at start-up so that a
 * store never runs against a schema it does not know.
 */
export const schemaVersion = (
  sql: SqlClient.SqlClient,
  backend: string,
  tableExists: Effect.Effect<boolean, SqlError>
): Effect.Effect<number, StorageUnavailable> =>
  Effect.gen(function* () {
    if (!(yield* tableExists)) return 0
    const rows = yield* sql<{
      version: number | string | null
    }>`SELECT MAX(version) AS version FROM schema_migrations`
    return Number(rows[0]?.version ?? 0)
  }).pipe(Effect.mapError(storageUnavailable(backend, "schemaVersion")))

/**
 * A `MigrationLock` for a backend whose lock belongs to a session (MariaDB/MySQL `GET_LOCK`, SQL Server
 * `sp_getapplock`): `lock` is taken on the one connection of the migration transaction and answers
 * whether it was granted within the backend's wait; `unlock` runs after, whatever the outcome (a
 * connection that dies drops its lock with it).
 */
export const sessionLock = (
  backend: string,
  lock: (sql: SqlClient.SqlClient) => Effect.Effect<boolean, SqlError>,
  unlock: (sql: SqlClient.SqlClient) => Effect.Effect<unknown, SqlError>
): MigrationLock => ({
  backend,
  withLock: (sql, effect) =>
    sql.withTransaction(
      Effect.acquireUseRelease(
        Effect.filterOrFail(
          lock(sql),
          (granted) => granted,
          () =>
            new SqlError({ cause: undefined, message: "Another process held the migration lock too long" })
        ),
        () => effect,
        () => Effect.ignore(unlock(sql))
      )
    )
})

/**
 * Whether `schema_migrations` exists in the current schema, by the standard `information_schema`
 * (`currentSchema`: the SQL of the current schema's name, MariaDB/MySQL `DATABASE()`).
 */
export const hasMigrationsTable = (
  sql: SqlClient.SqlClient,
  currentSchema: string
): Effect.Effect<boolean, SqlError> =>
  Effect.map(
    sql<{ found: number | string }>`SELECT COUNT(*) AS found FROM information_schema.tables
      WHERE table_schema = ${sql.literal(currentSchema)} AND table_name = 'schema_migrations'`,
    (rows) => Number(rows[0]?.found) > 0
  )

/**
 * The refusal of a schema at `actual` by a release that needs `expected`, naming the fix (run the
 * migrations, or upgrade token-broker).
 */
export const schemaMismatch = (actual: number, expected: number, backend: string): StorageUnavailable =>
  new StorageUnavailable({
    operation: "start",
    message:
      actual < expected
        ? `The ${backend} database is at schema version ${actual}, this release needs ${expected}: run the migrations (migrate, or the layer option migrate: true)`
        : `The ${backend} database is at schema version ${actual}, newer than this release knows (${expected}): upgrade token-broker`
  })

/** Fails unless the database is exactly at `expected` (the latest version this release knows). */
export const requireSchemaVersion = (
  actual: number,
  expected: number,
  backend: string
): Effect.Effect<void, StorageUnavailable> =>
  actual === expected ? Effect.void : Effect.fail(schemaMismatch(actual, expected, backend))
