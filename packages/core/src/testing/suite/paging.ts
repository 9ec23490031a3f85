import { randomUUID } from "node:crypto"
import { describe, expect } from "@effect/vitest"
import { Effect } from "effect"
import { compareKeys, type GrantFilter, type GrantKey, type GrantRecord } from "../../Grant.js"
import type { GrantStoreDriver } from "../../GrantStore.js"
import { freshTenant, minimalRecord } from "../fixtures.js"
import { key, keysOf, listAll, type SuiteIt, sortedKeys, store } from "./shared.js"

/** Listing: filters, order and keyset paging. */
export const suitePaging = (it: SuiteIt): void => {
  describe("list", () => {
    const seed = (driver: GrantStoreDriver, records: ReadonlyArray<GrantRecord>) =>
      Effect.forEach(records, (r) => driver.insert(r), { concurrency: 4, discard: true })

    it.effect("filters by tenant, subject, provider and status, in key order", () =>
      Effect.gen(function* () {
        const driver = yield* store
        const tenant = freshTenant()
        const other = freshTenant()
        const subject = `subject-${randomUUID()}`
        const a1 = minimalRecord(key(tenant, subject, "nextcloud"))
        const a2 = minimalRecord(key(tenant, subject, "github"), { status: "reconsent_required" })
        const b1 = minimalRecord(key(tenant, "bob", "nextcloud"))
        const b2 = minimalRecord(key(tenant, "bob", "github"), { status: "reconsent_required" })
        const o1 = minimalRecord(key(other, subject, "nextcloud"))
        const o2 = minimalRecord(key(other, "carol", "gitlab"))
        const records = [a1, a2, b1, b2, o1, o2]
        yield* seed(driver, records)
        const expectList = (filter: GrantFilter, expected: ReadonlyArray<GrantRecord>) =>
          Effect.map(driver.list(filter, null, 100), (found) => {
            expect(keysOf(found)).toEqual(sortedKeys(expected))
            for (const r of found) {
              expect(records.find((x) => compareKeys(x, r) === 0)).toEqual(r)
            }
          })
        yield* expectList({ tenant }, [a1, a2, b1, b2])
        yield* expectList({ tenant, subject }, [a1, a2])
        yield* expectList({ tenant, provider: "nextcloud" }, [a1, b1])
        yield* expectList({ tenant, status: "reconsent_required" }, [a2, b2])
        yield* expectList({ tenant, status: "active", provider: "nextcloud", subject: "bob" }, [b1])
        yield* expectList({ subject }, [a1, a2, o1])
        yield* expectList({ tenant: other, provider: "gitlab" }, [o2])
        yield* expectList({ tenant, provider: "gitlab" }, [])
      })
    )

    it.effect("pages through every record in compareKeys order, without duplicates or gaps", () =>
      Effect.gen(function* () {
        const driver = yield* store
        const tenant = freshTenant()
        const subjects = [
          "alice",
          "Alice",
          "bob",
          "a b",
          "a-b",
          "a_b",
          "a.b",
          "zoë",
          "Zoë",
          "ßtraße",
          "z",
          "~"
        ]
        const records = subjects.flatMap((subject) =>
          ["nextcloud", "github", "Git-Lab"].map((provider) => minimalRecord(key(tenant, subject, provider)))
        )
        yield* seed(driver, records)
        for (const size of [1, 4, 7, records.length, records.length + 5]) {
          const all = yield* listAll(driver, { tenant }, size)
          expect(keysOf(all)).toEqual(sortedKeys(records))
        }
        const nextcloud = yield* listAll(driver, { tenant, provider: "nextcloud" }, 5)
        expect(keysOf(nextcloud)).toEqual(sortedKeys(records.filter((r) => r.provider === "nextcloud")))
      })
    )

    it.effect("paging stays consistent when records are inserted between pages", () =>
      Effect.gen(function* () {
        const driver = yield* store
        const tenant = freshTenant()
        const originals = ["b", "d", "f", "h", "j", "l", "n", "p"].map((s) => minimalRecord(key(tenant, s)))
        yield* seed(driver, originals)
        const seen: Array<GrantRecord> = []
        const added: Array<GrantRecord> = []
        let after: GrantKey | null = null
        let round = 0
        for (;;) {
          const page: ReadonlyArray<GrantRecord> = yield* driver.list({ tenant }, after, 3)
          seen.push(...page)
          const last = page.at(-1)
          if (page.length < 3 || last === undefined) break
          after = last
          round++
          // one record before the cursor (must not show up again), one after it (must show up once)
          const before = minimalRecord(key(tenant, `a${round}`))
          const later = minimalRecord(key(tenant, `${last.subject}${round}`))
          added.push(before, later)
          yield* driver.insert(before)
          yield* driver.insert(later)
        }
        const seenKeys = keysOf(seen)
        expect(seenKeys).toEqual(sortedKeys(seen))
        expect(new Set(seen.map((r) => r.subject)).size).toBe(seen.length)
        for (const r of originals) expect(seenKeys).toContainEqual(keysOf([r])[0])
        for (const r of added.filter((r) => r.subject.startsWith("a"))) {
          expect(seenKeys).not.toContainEqual(keysOf([r])[0])
        }
        for (const r of added.filter((r) => !r.subject.startsWith("a"))) {
          expect(seenKeys).toContainEqual(keysOf([r])[0])
        }
      })
    )
  })
}
