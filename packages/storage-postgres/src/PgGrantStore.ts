import type * as SqlClient from "@effect/sql/SqlClient"
import * as PgClient from "@effect/sql-pg/PgClient"
import { ConfigInvalid, GrantStore, type StorageUnavailable } from "@token-broker/core"
import { SqlGrantStore, SqlMigrations } from "@token-broker/storage-sql"
import { Duration, Effect, Layer, Redacted, type Scope } from "effect"
import Pg from "pg"
import { migrations } from "./internal/migrations.js"

export interface PgGrantStoreOptions {
  /** Connection URL, e.g. `postgres://user:password@host:5432/db` (a `Redacted` keeps it out of logs). */
  readonly url: string | Redacted.Redacted<string>
  /**
   * The schema holding the store's tables (created by the migrations when missing), set as the
   * `search_path` of every connection. Lower-case letters, digits and `_`. Default `token_broker`.
   */
  readonly schema?: string | undefined
  /** Connections in the pool (default 10). */
  readonly poolSize?: number | undefined
  /** Server-side `statement_timeout` of every statement (default 5 seconds). */
  readonly statementTimeout?: Duration.DurationInput | undefined
  /** How long opening a connection may take (default 5 seconds). */
  readonly connectTimeout?: Duration.DurationInput | undefined
  /** Apply pending migrations when the layer starts (default `false`: run `migrate` explicitly). */
  readonly migrate?: boolean | undefined
  /** `application_name` of the connections (default `token-broker`). */
  readonly applicationName?: string | undefined
}

/** PostgreSQL leases exclude every process and replica using the database; data is durable. */
export const capabilities: GrantStore.GrantStoreCapabilities = { crossProcessLeases: true, durable: true }

/** The latest schema version this release knows. */
export const schemaVersion = SqlMigrations.latestVersion(migrations)

const backend = "postgres"
const SCHEMA = /^[a-z_][a-z0-9_]{0,62}$/
/** First key of the advisory lock taken while migrating ("tkbr"); the second is the schema's hash. */
const MIGRATION_LOCK_CLASS = 0x746b6272

const dialect: SqlGrantStore.SqlDialect = {
  backend,
  // the database server's clock: replicas on different machines agree on lease expiry
  leaseNow: (sql) =>
    Effect.succeed(sql.literal("(floor(extract(epoch from clock_timestamp()) * 1000))::bigint"))
}

const migrationLock = (schema: string): SqlMigrations.MigrationLock => ({
  backend,
  withLock: (sql, effect) =>
    sql.withTransaction(
      Effect.gen(function* () {
        yield* sql`SELECT pg_advisory_xact_lock(${sql.literal(String(MIGRATION_LOCK_CLASS))}, hashtext(${schema}))`
        yield* sql`CREATE SCHEMA IF NOT EXISTS ${sql(schema)}`
        return yield* effect
      })
    )
})

const tableExists = (sql: SqlClient.SqlClient) =>
  Effect.map(
    sql<{ found: boolean }>`SELECT to_regclass('schema_migrations') IS NOT NULL AS found`,
    (rows) => rows[0]?.found === true
  )

const store: SqlGrantStore.StoreOptions = { dialect, capabilities, migrations, tableExists }

const millis = (input: Duration.DurationInput | undefined, fallback: Duration.DurationInput): number =>
  Math.round(Duration.toMillis(Duration.decode(input ?? fallback)))

const schemaOf = (options: PgGrantStoreOptions): Effect.Effect<string, ConfigInvalid> => {
  const schema = options.schema ?? "token_broker"
  return SCHEMA.test(schema)
    ? Effect.succeed(schema)
    : Effect.fail(
        new ConfigInvalid({
          field: "schema",
          message: `The PostgreSQL schema name must match ${SCHEMA} (lower-case letters, digits and _)`
        })
      )
}

/**
 * A pool whose every connection has `search_path` set to the store's schema and a `statement_timeout`.
 * A connection the server closed (restart, network cut) is dropped from the pool, and the next call
 * opens a new one: no restart of the process is needed when the server comes back.
 */
const connect = (
  options: PgGrantStoreOptions,
  schema: string
): Effect.Effect<SqlClient.SqlClient, StorageUnavailable, Scope.Scope> => {
  const statementTimeout = millis(options.statementTimeout, Duration.seconds(5))
  const acquire = Effect.acquireRelease(
    Effect.sync(() => {
      const pool = new Pg.Pool({
        connectionString: Redacted.isRedacted(options.url) ? Redacted.value(options.url) : options.url,
        max: options.poolSize ?? 10,
        connectionTimeoutMillis: millis(options.connectTimeout, Duration.seconds(5)),
        idleTimeoutMillis: 30_000,
        keepAlive: true,
        statement_timeout: statementTimeout,
        // client-side bound too, for a server that stopped answering without closing the socket
        query_timeout: statementTimeout + 2_000,
        options: `-c search_path=${schema}`,
        application_name: options.applicationName ?? "token-broker"
      })
      // an idle connection that the server closed: the pool drops it; nothing to do here
      pool.on("error", () => undefined)
      return pool
    }),
    (pool) => Effect.promise(() => pool.end()).pipe(Effect.timeoutOption(Duration.seconds(2)))
  )
  return SqlGrantStore.openClient(
    backend,
    PgClient.fromPool({ acquire, applicationName: options.applicationName ?? "token-broker" }).pipe(
      Effect.tap((sql) => sql`SELECT 1`)
    )
  )
}

/**
 * Brings the schema to the latest version (or `toVersion`), creating it when missing. Several processes
 * may run it at once (a transaction-scoped advisory lock serializes them); on a current schema it is a
 * no-op.
 */
export const migrate: SqlMigrations.Migrate<PgGrantStoreOptions, ConfigInvalid> = (options) =>
  Effect.scoped(
    Effect.gen(function* () {
      const schema = yield* schemaOf(options)
      const sql = yield* connect(options, schema)
      return yield* SqlMigrations.runMigrations(sql, migrationLock(schema), migrations, options)
    })
  )

/** The GrantStore service on PostgreSQL; the pool is closed when the scope closes. */
export const make = (
  options: PgGrantStoreOptions
): Effect.Effect<SqlGrantStore.Store, StorageUnavailable | ConfigInvalid, Scope.Scope> =>
  Effect.gen(function* () {
    const schema = yield* schemaOf(options)
    const sql = yield* connect(options, schema)
    return yield* SqlGrantStore.makeStore(
      sql,
      store,
      options.migrate === true ? migrationLock(schema) : undefined
    )
  })

/**
 * The GrantStore on PostgreSQL, the store for several replicas. Options are plain data, so a child
 * process can build the same layer.
 */
export const layer = (
  options: PgGrantStoreOptions
): Layer.Layer<GrantStore.GrantStore, StorageUnavailable | ConfigInvalid> =>
  Layer.scoped(GrantStore.GrantStore, make(options))
