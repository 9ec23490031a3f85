import { grantStoreConformance } from "@token-broker/core/testing"
import { Effect } from "effect"
import { afterAll, expect, it } from "vitest"
import { MysqlGrantStore } from "../src/index.js"
import { dropDatabase, dumpDatabase, freshDatabase, urlOf, withConnection } from "./mariadb.js"

const database = freshDatabase()
const options = { url: urlOf(database), migrate: true }
afterAll(() => dropDatabase(database))

// counted as a failure (not a skip) when the server does not answer, with the reason
it("MariaDB answers at MARIADB_URL (default mysql://root@127.0.0.1:3306/test)", async () => {
  const [rows] = await withConnection((conn) => conn.query("SELECT 1 AS one"))
  expect(rows).toEqual([{ one: 1 }])
})

grantStoreConformance("mysql (MariaDB)", () => MysqlGrantStore.layer(options), {
  // what this store must have, named here and never read from the store: a store that stops declaring
  // one fails the suite's capability test instead of silently skipping the tests that need it
  capabilities: { crossProcessLeases: true, durable: true },
  child: { module: "@token-broker/storage-mysql", export: "MysqlGrantStore.layer", options },
  rawDump: () => Effect.promise(() => dumpDatabase(database))
})
