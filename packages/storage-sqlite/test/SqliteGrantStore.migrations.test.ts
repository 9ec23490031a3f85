import { execFile } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { promisify } from "node:util"
import * as SqlClient from "@effect/sql/SqlClient"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import { describe, expect, it } from "@effect/vitest"
import { GrantStore } from "@token-broker/core"
import { fullRecord, minimalRecord } from "@token-broker/core/testing"
import { Effect, Layer } from "effect"
import { afterAll } from "vitest"
import { SqliteGrantStore } from "../src/index.js"

const dir = mkdtempSync(join(tmpdir(), "tb-sqlite-migrations-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
let files = 0
const freshFile = () => join(dir, `db-${files++}.sqlite`)

/** Raw SQL on the file, as an older release would have written it. */
const withRawSql = <A, E>(filename: string, use: (sql: SqlClient.SqlClient) => Effect.Effect<A, E>) =>
  Effect.flatMap(SqlClient.SqlClient, use).pipe(Effect.provide(SqliteClient.layer({ filename })))

describe("SqliteGrantStore migrations", () => {
  it.live("upgrades a version-1 database to the current schema without losing a row", () =>
    Effect.gen(function* () {
      const filename = freshFile()
      expect(yield* SqliteGrantStore.migrate({ filename, toVersion: 1 })).toEqual({
        from: 0,
        to: 1,
        applied: [1]
      })
      const records = Array.from({ length: 40 }, (_, i) =>
        (i % 2 === 0 ? fullRecord : minimalRecord)({
          tenant: "acme",
          subject: `user-${i}`,
          provider: "nextcloud"
        })
      )
      yield* withRawSql(filename, (sql) =>
        Effect.forEach(records, (r) => {
          const { tenant, subject, provider, version, status, ...data } = r
          return sql`INSERT INTO grants (tenant, subject, provider, version, status, updated_at, data)
            VALUES (${tenant}, ${subject}, ${provider}, ${version}, ${status}, ${r.updatedAt}, ${JSON.stringify(data)})`
        })
      )
      expect(yield* SqliteGrantStore.migrate({ filename })).toEqual({ from: 1, to: 3, applied: [2, 3] })
      expect(yield* SqliteGrantStore.migrate({ filename })).toEqual({ from: 3, to: 3, applied: [] })
      const listed = yield* Effect.flatMap(GrantStore.GrantStore, (store) =>
        store.list({ tenant: "acme" }, null, 100)
      ).pipe(Effect.provide(SqliteGrantStore.layer({ filename })))
      expect([...listed].sort((a, b) => a.subject.localeCompare(b.subject))).toEqual(
        [...records].sort((a, b) => a.subject.localeCompare(b.subject))
      )
    })
  )

  it.live("a store refuses to start on a database that was not migrated, and says how to fix it", () =>
    Effect.gen(function* () {
      const filename = freshFile()
      const error = yield* Effect.flip(Layer.build(SqliteGrantStore.layer({ filename })).pipe(Effect.scoped))
      expect(error._tag).toBe("StorageUnavailable")
      expect(error.message).toMatch(/schema version 0.*run the migrations/)
      yield* SqliteGrantStore.migrate({ filename, toVersion: 1 })
      const older = yield* Effect.flip(Layer.build(SqliteGrantStore.layer({ filename })).pipe(Effect.scoped))
      expect(older.message).toMatch(/schema version 1, this release needs 3/)
    })
  )

  it.live(
    "several processes migrating one new file at once apply each step exactly once",
    () =>
      Effect.gen(function* () {
        const filename = freshFile()
        const run = promisify(execFile)
        const results = yield* Effect.promise(() =>
          Promise.all(
            Array.from({ length: 4 }, () =>
              run(process.execPath, [
                "--import",
                "tsx",
                join(import.meta.dirname, "migrate-child.ts"),
                filename
              ])
            )
          )
        )
        const applied = results.flatMap((r) => (JSON.parse(r.stdout) as { applied: Array<number> }).applied)
        expect(applied.sort()).toEqual([1, 2, 3])
        const rows = yield* withRawSql(
          filename,
          (sql) => sql<{ version: number }>`SELECT version FROM schema_migrations ORDER BY version`
        )
        expect(rows.map((r) => r.version)).toEqual([1, 2, 3])
      }),
    180_000
  )
})
