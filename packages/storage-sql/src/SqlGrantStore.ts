import * as Reactivity from "@effect/experimental/Reactivity"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import type { Fragment } from "@effect/sql/Statement"
import {
  type GrantFilter,
  type GrantKey,
  type GrantRecord,
  type GrantStore,
  parseGrantRecord,
  parsePendingAuthorization,
  StorageUnavailable
} from "@token-broker/core"
import { Clock, type Context, Duration, Effect, Option } from "effect"
import { storageUnavailable } from "./internal/errors.js"
import {
  latestVersion,
  type Migration,
  type MigrationLock,
  requireSchemaVersion,
  runMigrations,
  schemaVersion
} from "./SqlMigrations.js"

/**
 * Maps a driver failure to `StorageUnavailable` naming the backend, the operation and the error code
 * only: never a row value or a secret.
 */
export { storageUnavailable }

/**
 * Where the SQL dialects differ, for the GrantStore driver. Only `backend` and `leaseNow` are required:
 * the other hooks default to the PostgreSQL/SQLite forms (`RETURNING`, `ON CONFLICT`).
 */
export interface SqlDialect {
  /** Backend name for error messages ("sqlite", "postgres", "mysql"). */
  readonly backend: string
  /**
   * The lease clock's current time in epoch milliseconds, as SQL: the database server's clock
   * (PostgreSQL, MariaDB: every replica agrees) or a parameter taken from the process clock (SQLite: one
   * machine).
   */
  readonly leaseNow: (sql: SqlClient.SqlClient) => Effect.Effect<Fragment>
  /**
   * Runs a write (UPDATE or DELETE) and answers how many rows its WHERE clause matched. Default: the
   * statement with `RETURNING 1`, counting the rows. MariaDB/MySQL have no `UPDATE ... RETURNING`: the
   * affected-row count with `CLIENT_FOUND_ROWS` (matched, not changed, rows).
   */
  readonly matchedRows?: (sql: SqlClient.SqlClient, write: Fragment) => Effect.Effect<number, SqlError>
  /**
   * Runs an INSERT of one row and answers whether it was inserted (`false`: a row with its primary key
   * exists; nothing was written). Default: `ON CONFLICT DO NOTHING RETURNING 1`. MariaDB/MySQL: the
   * plain INSERT, a duplicate-key error meaning `false` (`INSERT IGNORE` would also hide truncation).
   */
  readonly insertIfAbsent?: (sql: SqlClient.SqlClient, insert: Fragment) => Effect.Effect<boolean, SqlError>
  /**
   * The clause that turns an INSERT into an upsert: on a duplicate `key`, overwrite the `columns` with
   * the inserted values. Default `ON CONFLICT (key) DO UPDATE SET c = excluded.c`; MariaDB/MySQL
   * `ON DUPLICATE KEY UPDATE c = VALUES(c)`.
   */
  readonly upsertClause?: (
    sql: SqlClient.SqlClient,
    key: ReadonlyArray<string>,
    columns: ReadonlyArray<string>
  ) => Fragment
  /**
   * Put before every statement of the driver, for per-statement settings (MariaDB:
   * `SET STATEMENT max_statement_time=5 FOR`). Default none.
   */
  readonly statementPrefix?: string | undefined
}

interface GrantRow {
  readonly tenant: string
  readonly subject: string
  readonly provider: string
  readonly version: number | string
  readonly status: string
  readonly data: string
}

/** The columns of a grant row; the rest of the record is `data` (JSON text, envelopes kept verbatim). */
const toRow = (record: GrantRecord) => {
  const { tenant: _t, subject: _s, provider: _p, version: _v, status: _st, ...rest } = record
  return {
    status: record.status,
    version: record.version,
    updatedAt: record.updatedAt,
    data: JSON.stringify(rest)
  }
}

type Parsed<A> = { readonly ok: true; readonly record: A } | { readonly ok: false; readonly problem: string }

/**
 * Decodes a stored JSON column and validates it against core's canonical form (F8): a row that is not
 * JSON or is malformed is named (`what`: "grant record", "pending authorization"), never used.
 */
const decodeStored = <A>(
  what: string,
  text: string,
  parse: (data: Record<string, unknown>) => Parsed<A>
): Effect.Effect<A, StorageUnavailable> =>
  Effect.try({
    try: () => JSON.parse(text) as Record<string, unknown>,
    catch: () =>
      new StorageUnavailable({ operation: "decode", message: `A stored ${what} is not valid JSON` })
  }).pipe(
    Effect.flatMap((data) => {
      const parsed = parse(data)
      return parsed.ok
        ? Effect.succeed(parsed.record)
        : Effect.fail(
            new StorageUnavailable({
              operation: "decode",
              message: `A stored ${what} is malformed (${parsed.problem})`
            })
          )
    })
  )

/** A grant row: its `data` with the key, version and status of its columns. */
const decodeGrant = (row: GrantRow): Effect.Effect<GrantRecord, StorageUnavailable> =>
  decodeStored("grant record", row.data, (data) =>
    parseGrantRecord({
      ...data,
      tenant: row.tenant,
      subject: row.subject,
      provider: row.provider,
      version: Number(row.version),
      status: row.status
    })
  )

/**
 * The GrantStore driver over an `@effect/sql` client. Tables (created by each backend's migrations):
 * `grants` (tenant, subject, provider, version, status, updated_at, data), `pending_authorizations`
 * (state_hash, expires_at, data), `leases` (name, owner, expires_at), `grant_tombstones` (the last
 * version of each deleted grant, written by a delete trigger; an insert starts above it, so versions of
 * a key never repeat). Every operation is one atomic statement (acquireLease: two, each atomic);
 * no transaction spans two calls. The dialect's hooks say how a backend counts matched rows, inserts
 * only when absent and upserts.
 */
export const makeDriver = (
  dialect: SqlDialect
): Effect.Effect<GrantStore.GrantStoreDriver, never, SqlClient.SqlClient> =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    // put before every top-level statement (never before a fragment inside one)
    const head = sql.literal(dialect.statementPrefix === undefined ? "" : `${dialect.statementPrefix} `)
    const fail =
      (operation: string) =>
      <A, R>(effect: Effect.Effect<A, SqlError | StorageUnavailable, R>) =>
        Effect.mapError(effect, storageUnavailable(dialect.backend, `GrantStore.${operation}`))
    const matchedRows =
      dialect.matchedRows ??
      ((_, write: Fragment) => Effect.map(sql`${write} RETURNING 1`, (rows) => rows.length))
    const insertIfAbsent =
      dialect.insertIfAbsent ??
      ((_, insert: Fragment) =>
        Effect.map(sql`${insert} ON CONFLICT DO NOTHING RETURNING 1`, (rows) => rows.length === 1))
    const upsertClause =
      dialect.upsertClause ??
      ((_, key: ReadonlyArray<string>, columns: ReadonlyArray<string>) =>
        sql.literal(
          `ON CONFLICT (${key.join(", ")}) DO UPDATE SET ${columns.map((c) => `${c} = excluded.${c}`).join(", ")}`
        ))
    const keyIs = (key: GrantKey) =>
      sql`tenant = ${key.tenant} AND subject = ${key.subject} AND provider = ${key.provider}`

    const filterClauses = (filter: GrantFilter, after: GrantKey | null): Array<Fragment> => {
      const clauses: Array<Fragment> = []
      if (filter.tenant !== undefined) clauses.push(sql`tenant = ${filter.tenant}`)
      if (filter.subject !== undefined) clauses.push(sql`subject = ${filter.subject}`)
      if (filter.provider !== undefined) clauses.push(sql`provider = ${filter.provider}`)
      if (filter.status !== undefined) clauses.push(sql`status = ${filter.status}`)
      if (after !== null) {
        clauses.push(
          sql`(tenant, subject, provider) > (${after.tenant}, ${after.subject}, ${after.provider})`
        )
      }
      return clauses
    }

    const driver: GrantStore.GrantStoreDriver = {
      get: (key) =>
        sql<GrantRow>`${head}SELECT tenant, subject, provider, version, status, data FROM grants WHERE ${keyIs(key)}`.pipe(
          Effect.flatMap((rows) =>
            rows[0] === undefined ? Effect.succeedNone : Effect.asSome(decodeGrant(rows[0]))
          ),
          fail("get")
        ),

      list: (filter, after, limit) =>
        sql<GrantRow>`${head}SELECT tenant, subject, provider, version, status, data FROM grants
          WHERE ${sql.and(filterClauses(filter, after))}
          ORDER BY tenant, subject, provider
          LIMIT ${limit}`.pipe(Effect.flatMap(Effect.forEach(decodeGrant)), fail("list")),

      insert: (record) => {
        const row = toRow(record)
        return insertIfAbsent(
          sql,
          sql`${head}INSERT INTO grants (tenant, subject, provider, version, status, updated_at, data)
          VALUES (${record.tenant}, ${record.subject}, ${record.provider},
            COALESCE((SELECT CASE WHEN version >= ${row.version} THEN version + 1 ELSE ${row.version} END
              FROM grant_tombstones WHERE ${keyIs(record)}), ${row.version}),
            ${row.status}, ${row.updatedAt}, ${row.data})`
        ).pipe(
          Effect.map((inserted) => (inserted ? ("ok" as const) : ("exists" as const))),
          fail("insert")
        )
      },

      compareAndSet: (key, expectedVersion, next) => {
        const row = toRow(next)
        return matchedRows(
          sql,
          sql`${head}UPDATE grants
          SET version = ${row.version}, status = ${row.status}, updated_at = ${row.updatedAt}, data = ${row.data}
          WHERE ${keyIs(key)} AND version = ${expectedVersion}`
        ).pipe(
          Effect.map((matched) => (matched === 1 ? ("ok" as const) : ("conflict" as const))),
          fail("compareAndSet")
        )
      },

      delete: (key) =>
        matchedRows(sql, sql`${head}DELETE FROM grants WHERE ${keyIs(key)}`).pipe(
          Effect.map((matched) => matched > 0),
          fail("delete")
        ),

      // Two atomic statements: take a free name (insert), else take over an expired lease or re-enter
      // one's own (update). A lease released between the two answers "not acquired"; withLease retries.
      acquireLease: (name, owner, ttl) =>
        Effect.flatMap(dialect.leaseNow(sql), (now) =>
          insertIfAbsent(
            sql,
            sql`${head}INSERT INTO leases (name, owner, expires_at)
            VALUES (${name}, ${owner}, ${now} + ${Duration.toMillis(ttl)})`
          ).pipe(
            Effect.flatMap((inserted) =>
              inserted
                ? Effect.succeed(true)
                : Effect.map(
                    matchedRows(
                      sql,
                      sql`${head}UPDATE leases SET owner = ${owner}, expires_at = ${now} + ${Duration.toMillis(ttl)}
                      WHERE name = ${name} AND (expires_at <= ${now} OR owner = ${owner})`
                    ),
                    (matched) => matched === 1
                  )
            )
          )
        ).pipe(fail("acquireLease")),

      renewLease: (name, owner, ttl) =>
        Effect.flatMap(dialect.leaseNow(sql), (now) =>
          matchedRows(
            sql,
            sql`${head}UPDATE leases SET expires_at = ${now} + ${Duration.toMillis(ttl)}
            WHERE name = ${name} AND owner = ${owner} AND expires_at > ${now}`
          )
        ).pipe(
          Effect.map((matched) => matched === 1),
          fail("renewLease")
        ),

      releaseLease: (name, owner) =>
        sql`${head}DELETE FROM leases WHERE name = ${name} AND owner = ${owner}`.pipe(
          Effect.asVoid,
          fail("releaseLease")
        ),

      putPending: (stateHash, record) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) =>
          Effect.zipRight(
            sql`${head}DELETE FROM pending_authorizations WHERE expires_at <= ${now}`,
            sql`${head}INSERT INTO pending_authorizations (state_hash, expires_at, data)
              VALUES (${stateHash}, ${record.expiresAt}, ${JSON.stringify(record)})
              ${upsertClause(sql, ["state_hash"], ["expires_at", "data"])}`
          )
        ).pipe(Effect.asVoid, fail("putPending")),

      takePending: (stateHash) =>
        sql<{
          data: string
        }>`${head}DELETE FROM pending_authorizations WHERE state_hash = ${stateHash} RETURNING data`.pipe(
          Effect.flatMap((rows) =>
            rows[0] === undefined
              ? Effect.succeedNone
              : decodeStored("pending authorization", rows[0].data, parsePendingAuthorization).pipe(
                  Effect.flatMap((record) =>
                    Effect.map(Clock.currentTimeMillis, (now) =>
                      record.expiresAt > now ? Option.some(record) : Option.none()
                    )
                  )
                )
          ),
          fail("takePending")
        )
    }
    return driver
  })

/**
 * A client as an adapter's driver opens it (`open`: e.g. `PgClient.fromPool`), with the `Reactivity`
 * service `@effect/sql` clients need; a failure to connect is `StorageUnavailable` naming the backend.
 */
export const openClient = <E extends SqlError | StorageUnavailable, R>(
  backend: string,
  open: Effect.Effect<SqlClient.SqlClient, E, R>
): Effect.Effect<SqlClient.SqlClient, StorageUnavailable, Exclude<R, Reactivity.Reactivity>> =>
  open.pipe(Effect.provide(Reactivity.layer), Effect.mapError(storageUnavailable(backend, "connect")))

/** The GrantStore service an adapter's `make` builds. */
export type Store = Context.Tag.Service<GrantStore.GrantStore>

export interface StoreOptions {
  readonly dialect: SqlDialect
  readonly capabilities: GrantStore.GrantStoreCapabilities
  /** The adapter's migrations: the store refuses a schema other than their latest version. */
  readonly migrations: ReadonlyArray<Migration>
  /** Whether `schema_migrations` exists (a backend's catalog query). */
  readonly tableExists: (sql: SqlClient.SqlClient) => Effect.Effect<boolean, SqlError>
}

/**
 * The GrantStore service on an open client: applies the pending migrations first under `migrateUnder`
 * when given (an adapter's layer option `migrate: true`), refuses a schema older or newer than the
 * adapter's migrations (naming the fix), then the driver with the adapter's capabilities.
 */
export const makeStore = (
  sql: SqlClient.SqlClient,
  options: StoreOptions,
  migrateUnder?: MigrationLock | undefined
): Effect.Effect<Store, StorageUnavailable> =>
  Effect.gen(function* () {
    const { backend } = options.dialect
    if (migrateUnder !== undefined) yield* runMigrations(sql, migrateUnder, options.migrations)
    const version = yield* schemaVersion(sql, backend, options.tableExists(sql))
    yield* requireSchemaVersion(version, latestVersion(options.migrations), backend)
    const driver = yield* Effect.provideService(makeDriver(options.dialect), SqlClient.SqlClient, sql)
    return { ...driver, capabilities: options.capabilities }
  })
