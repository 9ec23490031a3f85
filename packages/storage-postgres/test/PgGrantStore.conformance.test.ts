import { grantStoreConformance } from "@token-broker/core/testing"
import { Effect } from "effect"
import { afterAll, expect, it } from "vitest"
import { PgGrantStore } from "../src/index.js"
import { databaseUrl, dropSchema, dumpSchema, freshSchema, withClient } from "./postgres.js"

const schema = freshSchema()
const options = { url: databaseUrl, schema, migrate: true }
afterAll(() => dropSchema(databaseUrl, schema))

// counted as a failure (not a skip) when the server does not answer, with the reason
it("PostgreSQL answers at DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test)", async () => {
  const result = await withClient(databaseUrl, (client) => client.query("SELECT 1 AS one"))
  expect(result.rows).toEqual([{ one: 1 }])
})

grantStoreConformance("postgres", () => PgGrantStore.layer(options), {
  // what this store must have, named here and never read from the store: a store that stops declaring
  // one fails the suite's capability test instead of silently skipping the tests that need it
  capabilities: { crossProcessLeases: true, durable: true },
  child: { module: "@token-broker/storage-postgres", export: "PgGrantStore.layer", options },
  rawDump: () => Effect.promise(() => dumpSchema(databaseUrl, schema))
})
