import * as MysqlClient from "@effect/sql-mysql2/MysqlClient"
import { ConfigInvalid, GrantStore, type StorageUnavailable } from "@token-broker/core"
import { SqlGrantStore, SqlMigrations } from "@token-broker/storage-sql"
import { Duration, Effect, Layer, Redacted, type Scope } from "effect"
import { backend, dialect, hasCode, migrationLock } from "./internal/dialect.js"
import { migrations } from "./internal/migrations.js"

export interface MysqlGrantStoreOptions {
  /**
   * `mysql://user:password@host:3306/database` (a `Redacted` keeps it out of logs);
   * `?socketPath=/path` connects over a Unix socket instead of TCP. `migrate` creates the database when missing.
   */
  readonly url: string | Redacted.Redacted<string>
  /** Connections in the pool (default 10). */
  readonly poolSize?: number | undefined
  /** Server-side `max_statement_time` and `innodb_lock_wait_timeout` of every statement (default 5 s). */
  readonly statementTimeout?: Duration.DurationInput | undefined
  /** How long opening a connection may take (default 5 seconds). */
  readonly connectTimeout?: Duration.DurationInput | undefined
  /** Apply pending migrations when the layer starts (default `false`: run `migrate` explicitly). */
  readonly migrate?: boolean | undefined
}

/** MariaDB leases exclude every process and replica using the database; data is durable. */
export const capabilities: GrantStore.GrantStoreCapabilities = { crossProcessLeases: true, durable: true }

/** The latest schema version this release knows. */
export const schemaVersion = SqlMigrations.latestVersion(migrations)

const DATABASE = /^[A-Za-z0-9_]{1,64}$/
const invalidUrl = (message: string) => Effect.fail(new ConfigInvalid({ field: "url", message }))

/** The URL with the pool options as mysql2 reads them from its query (other mysql2 options given there stay). */
const urlOf = (options: MysqlGrantStoreOptions): Effect.Effect<URL, ConfigInvalid> => {
  const raw = Redacted.isRedacted(options.url) ? Redacted.value(options.url) : options.url
  const url = URL.canParse(raw) ? new URL(raw) : undefined
  if (url?.protocol !== "mysql:")
    return invalidUrl("The URL must look like mysql://user:password@host:3306/database")
  if (!DATABASE.test(decodeURIComponent(url.pathname.slice(1))))
    return invalidUrl(`The database name (the URL's path) must match ${DATABASE}`)
  url.searchParams.set("connectTimeout", String(Duration.toMillis(options.connectTimeout ?? "5 seconds")))
  // matched rows, not changed rows, in the affected-row count: the compare-and-set answer
  url.searchParams.set("flags", "FOUND_ROWS")
  url.searchParams.set("enableKeepAlive", "true")
  return Effect.succeed(url)
}

/** A pool on `url`; a connection the server closed is dropped, and the next call opens a new one. */
const connect = (url: URL, maxConnections: number) =>
  SqlGrantStore.openClient(
    backend,
    MysqlClient.make({ url: Redacted.make(url.href), maxConnections }).pipe(
      // a database not created yet is schema version 0 (`migrate` creates it)
      Effect.catchIf(hasCode("ER_BAD_DB_ERROR"), () =>
        Effect.fail(SqlMigrations.schemaMismatch(0, schemaVersion, backend))
      )
    )
  )

/**
 * Brings the database to the latest schema version (or `toVersion`), creating it when missing. Several
 * processes may run it at once (a named lock serializes them); on a current schema it is a no-op.
 */
export const migrate: SqlMigrations.Migrate<MysqlGrantStoreOptions, ConfigInvalid> = (options) =>
  Effect.scoped(
    Effect.gen(function* () {
      const url = yield* urlOf(options)
      const database = decodeURIComponent(url.pathname.slice(1))
      const root = new URL(url)
      root.pathname = "/"
      const server = yield* connect(root, 1)
      yield* server`CREATE DATABASE IF NOT EXISTS ${server(database)} COLLATE utf8mb4_nopad_bin`.pipe(
        Effect.mapError(SqlGrantStore.storageUnavailable(backend, "migrate"))
      )
      const sql = yield* connect(url, 1)
      return yield* SqlMigrations.runMigrations(sql, migrationLock(database), migrations, options)
    })
  )

/** The GrantStore service on MariaDB; the pool is closed when the scope closes. */
export const make = (
  options: MysqlGrantStoreOptions
): Effect.Effect<SqlGrantStore.Store, StorageUnavailable | ConfigInvalid, Scope.Scope> =>
  Effect.gen(function* () {
    if (options.migrate === true) yield* migrate(options)
    const sql = yield* connect(yield* urlOf(options), options.poolSize ?? 10)
    return yield* SqlGrantStore.makeStore(sql, {
      dialect: dialect(Duration.toSeconds(options.statementTimeout ?? "5 seconds")),
      capabilities,
      migrations,
      tableExists: (client) => SqlMigrations.hasMigrationsTable(client, "DATABASE()")
    })
  })

/** The GrantStore on MariaDB. Options are plain data, so a child process can build the same layer. */
export const layer = (
  options: MysqlGrantStoreOptions
): Layer.Layer<GrantStore.GrantStore, StorageUnavailable | ConfigInvalid> =>
  Layer.scoped(GrantStore.GrantStore, make(options))
