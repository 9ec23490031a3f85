import { execFile } from "node:child_process"
import { join } from "node:path"
import { promisify } from "node:util"
import { describe, expect, it } from "@effect/vitest"
import { GrantStore } from "@token-broker/core"
import { fullRecord, minimalRecord } from "@token-broker/core/testing"
import { Effect, Layer } from "effect"
import { afterAll } from "vitest"
import { MysqlGrantStore } from "../src/index.js"
import { dropDatabase, freshDatabase, urlOf, withConnection } from "./mariadb.js"

const databases: Array<string> = []
const newDatabase = () => {
  const database = freshDatabase("tb_mig")
  databases.push(database)
  return database
}
afterAll(() => Promise.all(databases.map(dropDatabase)))

const startError = (options: MysqlGrantStore.MysqlGrantStoreOptions) =>
  Effect.flip(Layer.build(MysqlGrantStore.layer(options)).pipe(Effect.scoped))

describe("MysqlGrantStore migrations", () => {
  it.live("upgrades a version-1 schema to the current one without losing a row", () =>
    Effect.gen(function* () {
      const database = newDatabase()
      const options = { url: urlOf(database) }
      expect(yield* MysqlGrantStore.migrate({ ...options, toVersion: 1 })).toEqual({
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
      yield* Effect.promise(() =>
        withConnection(async (conn) => {
          for (const r of records) {
            const { tenant, subject, provider, version, status, ...data } = r
            await conn.execute(
              `INSERT INTO \`${database}\`.grants (tenant, subject, provider, version, status, updated_at, data) VALUES (?, ?, ?, ?, ?, ?, ?)`,
              [tenant, subject, provider, version, status, r.updatedAt, JSON.stringify(data)]
            )
          }
        })
      )
      expect(yield* MysqlGrantStore.migrate(options)).toEqual({ from: 1, to: 3, applied: [2, 3] })
      expect(yield* MysqlGrantStore.migrate(options)).toEqual({ from: 3, to: 3, applied: [] })
      const listed = yield* Effect.flatMap(GrantStore.GrantStore, (store) =>
        store.list({ tenant: "acme" }, null, 100)
      ).pipe(Effect.provide(MysqlGrantStore.layer(options)))
      const bySubject = (a: { subject: string }, b: { subject: string }) => (a.subject < b.subject ? -1 : 1)
      expect([...listed].sort(bySubject)).toEqual([...records].sort(bySubject))
    })
  )

  it.live("a store refuses to start on a schema that was not migrated, and says how to fix it", () =>
    Effect.gen(function* () {
      const database = newDatabase()
      yield* Effect.promise(() => withConnection((conn) => conn.query(`CREATE DATABASE \`${database}\``)))
      const error = yield* startError({ url: urlOf(database) })
      expect(error._tag).toBe("StorageUnavailable")
      expect(error.message).toMatch(/schema version 0.*run the migrations/)
    })
  )

  it.live("a schema newer than this release is refused by the store and left alone by migrate", () =>
    Effect.gen(function* () {
      const database = newDatabase()
      const options = { url: urlOf(database) }
      yield* MysqlGrantStore.migrate(options)
      yield* Effect.promise(() =>
        withConnection((conn) =>
          conn.query(
            `INSERT INTO \`${database}\`.schema_migrations (version, name, applied_at) VALUES (99, 'future', 0)`
          )
        )
      )
      const error = yield* startError(options)
      expect(error.message).toMatch(/schema version 99, newer than this release knows \(3\): upgrade/)
      const refused = yield* Effect.flip(MysqlGrantStore.migrate(options))
      expect(refused._tag).toBe("StorageUnavailable")
      expect(refused.message).toMatch(/newer than this release knows/)
    })
  )

  it.live("a URL that is not a mysql:// URL with a plain database name is ConfigInvalid naming the url", () =>
    Effect.gen(function* () {
      for (const url of ["postgres://root@127.0.0.1/test", "not a url", "mysql://root@127.0.0.1/a;DROP"]) {
        const error = yield* Effect.flip(MysqlGrantStore.migrate({ url }))
        expect(error._tag).toBe("ConfigInvalid")
        expect(error).toMatchObject({ field: "url" })
      }
      const started = yield* startError({ url: "mysql://root@127.0.0.1:3306/" })
      expect(started._tag).toBe("ConfigInvalid")
    })
  )

  it.live(
    "several processes migrating one new database at once apply each step exactly once",
    () =>
      Effect.gen(function* () {
        const database = newDatabase()
        const run = promisify(execFile)
        const results = yield* Effect.promise(() =>
          Promise.all(
            Array.from({ length: 4 }, () =>
              run(process.execPath, [
                "--import",
                "tsx",
                join(import.meta.dirname, "migrate-child.ts"),
                urlOf(database)
              ])
            )
          )
        )
        const applied = results.flatMap((r) => (JSON.parse(r.stdout) as { applied: Array<number> }).applied)
        expect(applied.sort()).toEqual([1, 2, 3])
        const [rows] = yield* Effect.promise(() =>
          withConnection((conn) =>
            conn.query(`SELECT version FROM \`${database}\`.schema_migrations ORDER BY version`)
          )
        )
        expect((rows as Array<{ version: number }>).map((r) => r.version)).toEqual([1, 2, 3])
      }),
    180_000
  )
})
