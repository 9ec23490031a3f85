import { randomUUID } from "node:crypto"
import { expect, type Vitest } from "@effect/vitest"
import { Effect } from "effect"
import { compareKeys, type GrantFilter, type GrantKey, type GrantRecord } from "../../Grant.js"
import { GrantStore, type GrantStoreDriver } from "../../GrantStore.js"

/** What each area of the suite is registered with: the layer's `it` and the suite's options. */
export type SuiteIt = Vitest.MethodsNonLive<GrantStore, true>

export const key = (tenant: string, subject = "alice", provider = "nextcloud"): GrantKey => ({
  tenant,
  subject,
  provider
})

export const store = GrantStore

/** The store under test, with `records` inserted (each insert must answer "ok"). */
export const storeWith = (...records: ReadonlyArray<GrantRecord>) =>
  Effect.gen(function* () {
    const driver = yield* store
    for (const record of records) expect(yield* driver.insert(record)).toBe("ok")
    return driver
  })
export const lease = (): string => `lease-${randomUUID()}`
export const owner = (label: string): string => `${label}-${randomUUID()}`

/** Every page of `list(filter)` with page size `size`, concatenated. */
export const listAll = (driver: GrantStoreDriver, filter: GrantFilter, size: number) =>
  Effect.gen(function* () {
    const all: Array<GrantRecord> = []
    let after: GrantKey | null = null
    for (;;) {
      const page: ReadonlyArray<GrantRecord> = yield* driver.list(filter, after, size)
      expect(page.length).toBeLessThanOrEqual(size)
      all.push(...page)
      const last = page.at(-1)
      if (page.length < size || last === undefined) return all
      after = last
    }
  })

export const keysOf = (records: ReadonlyArray<GrantKey>) =>
  records.map((r) => ({ tenant: r.tenant, subject: r.subject, provider: r.provider }))

export const sortedKeys = (records: ReadonlyArray<GrantKey>) => keysOf([...records].sort(compareKeys))
