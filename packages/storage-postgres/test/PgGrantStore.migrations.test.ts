import { join } from "node:path"
import * as PgClient from "@effect/sql-pg/PgClient"
import { describe, expect, it } from "@effect/vitest"
import { migrationSuite } from "@token-broker/storage-sql/testing"
import { Effect, Redacted } from "effect"
import { afterAll } from "vitest"
import { PgGrantStore } from "../src/index.js"
import { databaseUrl, dropSchema, freshSchema } from "./postgres.js"

const schemas: Array<string> = []
afterAll(() => Promise.all(schemas.map((s) => dropSchema(databaseUrl, s))))

migrationSuite({
  name: "PgGrantStore",
  place: "schema",
  currentVersion: PgGrantStore.schemaVersion,
  fresh: () => {
    const schema = freshSchema("tb_mig")
    schemas.push(schema)
    return { url: databaseUrl, schema }
  },
  migrate: (options, toVersion) => PgGrantStore.migrate({ ...options, toVersion }),
  layer: PgGrantStore.layer,
  sql: () => PgClient.layer({ url: Redacted.make(databaseUrl) }),
  table: ({ schema }, name) => `${schema}.${name}`,
  child: ({ url, schema }) => ({ script: join(import.meta.dirname, "migrate-child.ts"), args: [url, schema] })
})

describe("PgGrantStore migrate options", () => {
  it.live("a schema name that is not a plain identifier is ConfigInvalid", () =>
    Effect.gen(function* () {
      const invalid = yield* Effect.flip(PgGrantStore.migrate({ url: databaseUrl, schema: "Robert'); DROP" }))
      expect(invalid._tag).toBe("ConfigInvalid")
    })
  )
})
