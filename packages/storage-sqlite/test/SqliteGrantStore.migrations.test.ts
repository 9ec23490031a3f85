import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import { migrationSuite } from "@token-broker/storage-sql/testing"
import { afterAll } from "vitest"
import { SqliteGrantStore } from "../src/index.js"

const dir = mkdtempSync(join(tmpdir(), "tb-sqlite-migrations-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
let files = 0

migrationSuite({
  name: "SqliteGrantStore",
  place: "file",
  currentVersion: SqliteGrantStore.schemaVersion,
  fresh: () => ({ filename: join(dir, `db-${files++}.sqlite`) }),
  migrate: (options, toVersion) => SqliteGrantStore.migrate({ ...options, toVersion }),
  layer: SqliteGrantStore.layer,
  sql: ({ filename }) => SqliteClient.layer({ filename }),
  table: (_, name) => name,
  child: ({ filename }) => ({ script: join(import.meta.dirname, "migrate-child.ts"), args: [filename] })
})
