import { execFile } from "node:child_process"
import { join } from "node:path"
import { promisify } from "node:util"
import { describe, expect, it } from "@effect/vitest"
import { GrantStore } from "@token-broker/core"
import { fullRecord, minimalRecord } from "@token-broker/core/testing"
import { Effect, Layer } from "effect"
import { afterAll } from "vitest"
import { PgGrantStore } from "../src/index.js"
import { databaseUrl, dropSchema, freshSchema, withClient } from "./postgres.js"

const schemas: Array<string> = []
const newSchema = () => {
  const schema = freshSchema("tb_mig")
  schemas.push(schema)
  return schema
}
afterAll(() => Promise.all(schemas.map((s) => dropSchema(databaseUrl, s))))

describe("PgGrantStore migrations", () => {
  it.live("upgrades a version-1 schema to the current one without losing a row", () =>
    Effect.gen(function* () {
      const schema = newSchema()
      const options = { url: databaseUrl, schema }
      expect(yield* PgGrantStore.migrate({ ...options, toVersion: 1 })).toEqual({
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
        withClient(databaseUrl, async (client) => {
          for (const r of records) {
            const { tenant, subject, provider, version, status, ...data } = r
            await client.query(
              `INSERT INTO ${schema}.grants (tenant, subject, provider, version, status, updated_at, data) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
              [tenant, subject, provider, version, status, r.updatedAt, JSON.stringify(data)]
            )
          }
        })
      )
      expect(yield* PgGrantStore.migrate(options)).toEqual({ from: 1, to: 3, applied: [2, 3] })
      expect(yield* PgGrantStore.migrate(options)).toEqual({ from: 3, to: 3, applied: [] })
      const listed = yield* Effect.flatMap(GrantStore.GrantStore, (store) =>
        store.list({ tenant: "acme" }, null, 100)
      ).pipe(Effect.provide(PgGrantStore.layer(options)))
      const bySubject = (a: { subject: string }, b: { subject: string }) => (a.subject < b.subject ? -1 : 1)
      expect([...listed].sort(bySubject)).toEqual([...records].sort(bySubject))
    })
  )

  it.live("a store refuses to start on a schema that was not migrated, and says how to fix it", () =>
    Effect.gen(function* () {
      const schema = newSchema()
      const error = yield* Effect.flip(
        Layer.build(PgGrantStore.layer({ url: databaseUrl, schema })).pipe(Effect.scoped)
      )
      expect(error._tag).toBe("StorageUnavailable")
      expect(error.message).toMatch(/schema version 0.*run the migrations/)
      const invalid = yield* Effect.flip(PgGrantStore.migrate({ url: databaseUrl, schema: "Robert'); DROP" }))
      expect(invalid._tag).toBe("ConfigInvalid")
    })
  )

  it.live(
    "several processes migrating one new schema at once apply each step exactly once",
    () =>
      Effect.gen(function* () {
        const schema = newSchema()
        const run = promisify(execFile)
        const results = yield* Effect.promise(() =>
          Promise.all(
            Array.from({ length: 4 }, () =>
              run(process.execPath, [
                "--import",
                "tsx",
                join(import.meta.dirname, "migrate-child.ts"),
                databaseUrl,
                schema
              ])
            )
          )
        )
        const applied = results.flatMap((r) => (JSON.parse(r.stdout) as { applied: Array<number> }).applied)
        expect(applied.sort()).toEqual([1, 2, 3])
        const rows = yield* Effect.promise(() =>
          withClient(databaseUrl, (client) =>
            client.query(`SELECT version FROM ${schema}.schema_migrations ORDER BY version`)
          )
        )
        expect(rows.rows.map((r: { version: number }) => r.version)).toEqual([1, 2, 3])
      }),
    180_000
  )
})
