/**
 * The migration suite every SQL store runs. A store's test file describes how to make a fresh place
 * (schema, database, file), how to migrate it and how to reach it with raw SQL; the suite does the rest,
 * the same way for every backend.
 */
import { execFile } from "node:child_process"
import { promisify } from "node:util"
import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, it } from "@effect/vitest"
import type { ConfigInvalid, StorageUnavailable } from "@token-broker/core"
import { GrantStore } from "@token-broker/core"
import { fullRecord, minimalRecord } from "@token-broker/core/testing"
import { Effect, Layer } from "effect"
import type { MigrationResult } from "../SqlMigrations.js"

export interface MigrationHarness<O> {
  /** The store's name in test titles ("PgGrantStore"). */
  readonly name: string
  /** What one fresh place is ("schema", "database", "file"). */
  readonly place: string
  /** The schema version this release migrates to. */
  readonly currentVersion: number
  /** A place no other test uses; the suite cleans nothing up (the store's test file does). */
  readonly fresh: () => O
  /** Creates the place empty, as an operator would before the first migration (default: nothing to do). */
  readonly createEmpty?: (options: O) => Effect.Effect<void, unknown>
  readonly migrate: (
    options: O,
    toVersion?: number
  ) => Effect.Effect<MigrationResult, StorageUnavailable | ConfigInvalid>
  readonly layer: (options: O) => Layer.Layer<GrantStore.GrantStore, StorageUnavailable | ConfigInvalid>
  /** A raw SQL client on the place, for writing rows as an older release would have. */
  readonly sql: (options: O) => Layer.Layer<SqlClient.SqlClient, unknown>
  /** A table's name as statements on that client must write it (qualified where the client is not in the place). */
  readonly table: (options: O, name: string) => string
  /** Script and arguments of a child process that migrates the place and prints its `MigrationResult` as JSON. */
  readonly child: (options: O) => { readonly script: string; readonly args: ReadonlyArray<string> }
}

const startError = <O>(harness: MigrationHarness<O>, options: O) =>
  Effect.flip(Layer.build(harness.layer(options)).pipe(Effect.scoped))

const withSql = <O, A, E>(
  harness: MigrationHarness<O>,
  options: O,
  use: (sql: SqlClient.SqlClient) => Effect.Effect<A, E>
) => Effect.flatMap(SqlClient.SqlClient, use).pipe(Effect.provide(harness.sql(options)))

const bySubject = (a: { subject: string }, b: { subject: string }) => (a.subject < b.subject ? -1 : 1)

export const migrationSuite = <O>(harness: MigrationHarness<O>): void => {
  const current = harness.currentVersion
  const later = Array.from({ length: current - 1 }, (_, i) => i + 2)

  describe(`${harness.name} migrations`, () => {
    it.live(`upgrades a version-1 ${harness.place} to the current schema without losing a row`, () =>
      Effect.gen(function* () {
        const options = harness.fresh()
        expect(yield* harness.migrate(options, 1)).toEqual({ from: 0, to: 1, applied: [1] })
        const records = Array.from({ length: 40 }, (_, i) =>
          (i % 2 === 0 ? fullRecord : minimalRecord)({
            tenant: "acme",
            subject: `user-${i}`,
            provider: "nextcloud"
          })
        )
        const grants = harness.table(options, "grants")
        yield* withSql(harness, options, (sql) =>
          Effect.forEach(records, (r) => {
            const { tenant, subject, provider, version, status, ...data } = r
            return sql`INSERT INTO ${sql(grants)} (tenant, subject, provider, version, status, updated_at, data)
              VALUES (${tenant}, ${subject}, ${provider}, ${version}, ${status}, ${r.updatedAt}, ${JSON.stringify(data)})`
          })
        )
        expect(yield* harness.migrate(options)).toEqual({ from: 1, to: current, applied: later })
        expect(yield* harness.migrate(options)).toEqual({ from: current, to: current, applied: [] })
        const listed = yield* Effect.flatMap(GrantStore.GrantStore, (store) =>
          store.list({ tenant: "acme" }, null, 100)
        ).pipe(Effect.provide(harness.layer(options)))
        expect([...listed].sort(bySubject)).toEqual([...records].sort(bySubject))
      })
    )

    it.live(
      `a store refuses to start on a ${harness.place} that was not migrated, and says how to fix it`,
      () =>
        Effect.gen(function* () {
          const options = harness.fresh()
          if (harness.createEmpty !== undefined) yield* Effect.orDie(harness.createEmpty(options))
          const error = yield* startError(harness, options)
          expect(error._tag).toBe("StorageUnavailable")
          expect(error.message).toMatch(/schema version 0.*run the migrations/)
          yield* harness.migrate(options, 1)
          const older = yield* startError(harness, options)
          expect(older.message).toMatch(
            new RegExp(`schema version 1, this release needs ${current}: run the migrations`)
          )
        })
    )

    it.live(
      `a ${harness.place} newer than this release is refused by the store and left alone by migrate`,
      () =>
        Effect.gen(function* () {
          const options = harness.fresh()
          yield* harness.migrate(options)
          const migrations = harness.table(options, "schema_migrations")
          yield* withSql(
            harness,
            options,
            (sql) => sql`INSERT INTO ${sql(migrations)} (version, name, applied_at) VALUES (99, 'future', 0)`
          )
          const error = yield* startError(harness, options)
          expect(error.message).toMatch(
            new RegExp(`schema version 99, newer than this release knows \\(${current}\\): upgrade`)
          )
          const refused = yield* Effect.flip(harness.migrate(options))
          expect(refused._tag).toBe("StorageUnavailable")
          expect(refused.message).toMatch(/newer than this release knows/)
          const versions = yield* withSql(
            harness,
            options,
            (sql) =>
              sql<{ version: number | string }>`SELECT version FROM ${sql(migrations)} ORDER BY version`
          )
          expect(versions.map((r) => Number(r.version))).toEqual([
            ...Array.from({ length: current }, (_, i) => i + 1),
            99
          ])
        })
    )

    it.live(
      `several processes migrating one new ${harness.place} at once apply each step exactly once`,
      () =>
        Effect.gen(function* () {
          const options = harness.fresh()
          const { script, args } = harness.child(options)
          const run = promisify(execFile)
          const results = yield* Effect.promise(() =>
            Promise.all(
              Array.from({ length: 4 }, () => run(process.execPath, ["--import", "tsx", script, ...args]))
            )
          )
          const applied = results.flatMap((r) => (JSON.parse(r.stdout) as MigrationResult).applied)
          const all = Array.from({ length: current }, (_, i) => i + 1)
          expect([...applied].sort()).toEqual(all)
          const rows = yield* withSql(
            harness,
            options,
            (sql) =>
              sql<{
                version: number | string
              }>`SELECT version FROM ${sql(harness.table(options, "schema_migrations"))} ORDER BY version`
          )
          expect(rows.map((r) => Number(r.version))).toEqual(all)
        }),
      180_000
    )
  })
}
