import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { GrantStore } from "@token-broker/core"
import { fullRecord } from "@token-broker/core/testing"
import { Effect } from "effect"
import { afterAll } from "vitest"
import { SqliteGrantStore } from "../src/index.js"

const dir = mkdtempSync(join(tmpdir(), "tb-sqlite-files-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const modeOf = (path: string) => (statSync(path).mode & 0o777).toString(8)
const key = { tenant: "default", subject: "u-files", provider: "notes" }

/** The database holds encrypted grants and pending consents: only its owner may read it (issue 14.10). */
describe("SqliteGrantStore files", () => {
  const fresh = join(dir, "fresh.db")
  it.live("creates the database, WAL and SHM files 0600", () =>
    Effect.gen(function* () {
      const store = yield* GrantStore.GrantStore
      expect(yield* store.insert(fullRecord(key))).toBe("ok")
      for (const file of [fresh, `${fresh}-wal`, `${fresh}-shm`]) {
        expect({ file, mode: modeOf(file) }).toEqual({ file, mode: "600" })
      }
    }).pipe(Effect.provide(SqliteGrantStore.layer({ filename: fresh, migrate: true })))
  )

  const loose = join(dir, "loose.db")
  writeFileSync(loose, "")
  chmodSync(loose, 0o644)
  it.live("tightens an existing database file that others could read", () =>
    Effect.gen(function* () {
      const store = yield* GrantStore.GrantStore
      expect(yield* store.insert(fullRecord(key))).toBe("ok")
      expect(modeOf(loose)).toBe("600")
    }).pipe(Effect.provide(SqliteGrantStore.layer({ filename: loose, migrate: true })))
  )
})
