import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { grantStoreConformance } from "@token-broker/core/testing"
import { Effect } from "effect"
import { afterAll } from "vitest"
import { SqliteGrantStore } from "../src/index.js"

const dir = mkdtempSync(join(tmpdir(), "tb-sqlite-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
const filename = join(dir, "grants.db")
const options = { filename, migrate: true }

grantStoreConformance("sqlite", () => SqliteGrantStore.layer(options), {
  // what this store must have, named here and never read from the store: a store that stops declaring
  // one fails the suite's capability test instead of silently skipping the tests that need it
  capabilities: { crossProcessLeases: true, durable: true },
  child: { module: "@token-broker/storage-sqlite", export: "SqliteGrantStore.layer", options },
  rawDump: () =>
    Effect.sync(() =>
      [filename, `${filename}-wal`]
        .map((file) => {
          try {
            return readFileSync(file).toString("latin1")
          } catch {
            return ""
          }
        })
        .join("\n")
    )
})
