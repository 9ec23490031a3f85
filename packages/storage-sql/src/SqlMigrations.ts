import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { StorageUnavailable } from "@token-broker/core"
import { Effect } from "effect"
import { storageUnavailable } from "./internal/errors.js"

/** One forward step of a store's schema. Applied once, in order, inside the migration transaction. */
export interface Migration {
  readonly version: number
  readonly name: string
  readonly up: (sql: SqlClient.SqlClient) => Effect.Effect<void, SqlError>
}

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

const latest = (migrations: ReadonlyArray<Migration>): number =>
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
  const target = options.toVersion ?? latest(migrations)
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
        if (from > latest(migrations)) {
          return yield* new StorageUnavailable({
            operation: "migrate",
            message: `The ${lock.backend} database is at schema version ${from}, newer than this release knows (${latest(migrations)}): upgrade token-broker`
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

/** Fails unless the database is exactly at `expected` (the latest version this release knows). */
export const requireSchemaVersion = (
  actual: number,
  expected: number,
  backend: string
): Effect.Effect<void, StorageUnavailable> =>
  actual === expected
    ? Effect.void
    : Effect.fail(
        new StorageUnavailable({
          operation: "start",
          message:
            actual < expected
              ? `The ${backend} database is at schema version ${actual}, this release needs ${expected}: run the migrations (migrate, or the layer option migrate: true)`
              : `The ${backend} database is at schema version ${actual}, newer than this release knows (${expected}): upgrade token-broker`
        })
      )
