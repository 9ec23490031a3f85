import * as Reactivity from "@effect/experimental/Reactivity"
import * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import * as MysqlClient from "@effect/sql-mysql2/MysqlClient"
import { ConfigInvalid, GrantStore, type StorageUnavailable } from "@token-broker/core"
import { SqlGrantStore, SqlMigrations } from "@token-broker/storage-sql"
import { type Context, Duration, Effect, Layer, Redacted, type Scope } from "effect"
import { migrations } from "./internal/migrations.js"

export interface MysqlGrantStoreOptions {
  /**
   * `mysql://user:password@host:3306/database` (a `Redacted` keeps it out of logs); `?socket=/path`
   * connects over a Unix socket instead of TCP. The database is created by `migrate` when missing.
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
export const schemaVersion = Math.max(...migrations.map((m) => m.version))

const backend = "mysql"
const DATABASE = /^[A-Za-z0-9_]{1,64}$/

const millis = (input: Duration.DurationInput | undefined): number =>
  Math.round(Duration.toMillis(Duration.decode(input ?? Duration.seconds(5))))

const isDuplicateKey = (error: SqlError): boolean =>
  (error.cause as { code?: unknown } | undefined)?.code === "ER_DUP_ENTRY"

const dialect = (statementTimeout: number): SqlGrantStore.SqlDialect => ({
  backend,
  // the database server's clock (UTC, milliseconds): replicas on different machines agree on expiry
  leaseNow: (sql) => Effect.succeed(sql.literal("CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)")),
  // CLIENT_FOUND_ROWS (set on the pool): the count of rows the WHERE clause matched
  matchedRows: (sql, write) =>
    Effect.map(sql`${write}`.raw, (result) =>
      Number((result as { affectedRows?: number }).affectedRows ?? 0)
    ),
  insertIfAbsent: (sql, insert) =>
    sql`${insert}`.raw.pipe(
      Effect.as(true),
      Effect.catchIf(isDuplicateKey, () => Effect.succeed(false))
    ),
  upsertClause: (sql, _key, columns) =>
    sql.literal(`ON DUPLICATE KEY UPDATE ${columns.map((c) => `${c} = VALUES(${c})`).join(", ")}`),
  // MariaDB's per-statement settings: a time limit, strict mode (a too-long key is an error, never
  // truncated onto another key) and UTC for the lease clock, whatever the server's defaults
  statementPrefix: `SET STATEMENT max_statement_time=${statementTimeout / 1000}, innodb_lock_wait_timeout=${Math.max(1, Math.ceil(statementTimeout / 1000))}, time_zone='+00:00', sql_mode='STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION' FOR`
})

/** MariaDB's named lock (`GET_LOCK`), held by the one connection of the migration transaction. */
const migrationLock = (database: string): SqlMigrations.MigrationLock => ({
  backend,
  withLock: (sql, effect) =>
    sql.withTransaction(
      Effect.acquireUseRelease(
        Effect.flatMap(
          sql<{ got: number | null }>`SELECT GET_LOCK(${`token_broker_migrate:${database}`}, 60) AS got`,
          (rows) =>
            Number(rows[0]?.got) === 1
              ? Effect.void
              : Effect.fail(
                  new SqlError({
                    cause: undefined,
                    message: "Another process held the migration lock for 60 s"
                  })
                )
        ),
        () => effect,
        () => Effect.ignore(sql`SELECT RELEASE_LOCK(${`token_broker_migrate:${database}`})`)
      )
    )
})

const tableExists = (sql: SqlClient.SqlClient) =>
  Effect.map(
    sql<{ found: number }>`SELECT COUNT(*) AS found FROM information_schema.tables
      WHERE table_schema = DATABASE() AND table_name = 'schema_migrations'`,
    (rows) => Number(rows[0]?.found) > 0
  )

interface Target {
  readonly config: MysqlClient.MysqlClientConfig
  readonly database: string
}

const targetOf = (options: MysqlGrantStoreOptions): Effect.Effect<Target, ConfigInvalid> => {
  const raw = Redacted.isRedacted(options.url) ? Redacted.value(options.url) : options.url
  const url = URL.canParse(raw) ? new URL(raw) : undefined
  const database = decodeURIComponent(url?.pathname.slice(1) ?? "")
  if (url === undefined || (url.protocol !== "mysql:" && url.protocol !== "mariadb:")) {
    return Effect.fail(
      new ConfigInvalid({
        field: "url",
        message: "The MariaDB URL must look like mysql://user:password@host:3306/database"
      })
    )
  }
  if (!DATABASE.test(database)) {
    return Effect.fail(
      new ConfigInvalid({
        field: "url",
        message: `The MariaDB database name (the URL's path) must match ${DATABASE}`
      })
    )
  }
  const socketPath = url.searchParams.get("socket") ?? undefined
  return Effect.succeed({
    database,
    config: {
      host: url.hostname === "" ? "localhost" : url.hostname,
      port: url.port === "" ? 3306 : Number(url.port),
      database,
      username: decodeURIComponent(url.username) || "root",
      password: url.password === "" ? undefined : Redacted.make(decodeURIComponent(url.password)),
      maxConnections: options.poolSize ?? 10,
      poolConfig: {
        connectTimeout: millis(options.connectTimeout),
        // matched rows, not changed rows, in the affected-row count (the compare-and-set answer)
        flags: ["FOUND_ROWS"],
        enableKeepAlive: true,
        ...(socketPath === undefined ? {} : { socketPath })
      }
    }
  })
}

/** An open client on `config`; a connection the server closed is dropped and the next call opens one. */
const connect = (
  config: MysqlClient.MysqlClientConfig
): Effect.Effect<SqlClient.SqlClient, StorageUnavailable, Scope.Scope> =>
  MysqlClient.make(config).pipe(
    Effect.provide(Reactivity.layer),
    Effect.mapError(SqlGrantStore.storageUnavailable(backend, "connect"))
  )

/**
 * Brings the database to the latest schema version (or `toVersion`), creating the database when
 * missing. Several processes may run it at once (a named lock serializes them); on a current schema it
 * is a no-op.
 */
export const migrate = (
  options: MysqlGrantStoreOptions & SqlMigrations.MigrateOptions
): Effect.Effect<SqlMigrations.MigrationResult, StorageUnavailable | ConfigInvalid> =>
  Effect.scoped(
    Effect.gen(function* () {
      const { config, database } = yield* targetOf(options)
      const server = yield* connect({ ...config, database: undefined, maxConnections: 1 })
      yield* server`CREATE DATABASE IF NOT EXISTS ${server(database)}
        CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin`.pipe(
        Effect.mapError(SqlGrantStore.storageUnavailable(backend, "migrate"))
      )
      const sql = yield* connect(config)
      return yield* SqlMigrations.runMigrations(sql, migrationLock(database), migrations, options)
    })
  )

/** The GrantStore service on MariaDB; the pool is closed when the scope closes. */
export const make = (
  options: MysqlGrantStoreOptions
): Effect.Effect<
  Context.Tag.Service<GrantStore.GrantStore>,
  StorageUnavailable | ConfigInvalid,
  Scope.Scope
> =>
  Effect.gen(function* () {
    if (options.migrate === true) yield* migrate(options)
    const { config } = yield* targetOf(options)
    const sql = yield* connect(config)
    const version = yield* SqlMigrations.schemaVersion(sql, backend, tableExists(sql))
    yield* SqlMigrations.requireSchemaVersion(version, schemaVersion, backend)
    const driver = yield* Effect.provideService(
      SqlGrantStore.makeDriver(dialect(millis(options.statementTimeout))),
      SqlClient.SqlClient,
      sql
    )
    return { ...driver, capabilities }
  })

/**
 * The GrantStore on MariaDB, a store for several replicas. Options are plain data, so a child process
 * can build the same layer.
 */
export const layer = (
  options: MysqlGrantStoreOptions
): Layer.Layer<GrantStore.GrantStore, StorageUnavailable | ConfigInvalid> =>
  Layer.scoped(GrantStore.GrantStore, make(options))
