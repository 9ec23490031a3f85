import { describe, expect } from "@effect/vitest"
import { Clock, Effect, Layer, Option } from "effect"
import { GrantStore } from "../../GrantStore.js"
import {
  fakeEnvelope,
  freshStateHash,
  freshTenant,
  fullRecord,
  minimalRecord,
  nextVersion,
  pendingRecord
} from "../fixtures.js"
import type { GrantStoreConformanceOptions } from "../suite.js"
import { key, type SuiteIt, store, storeWith } from "./shared.js"

/** Grants: round-trips, exact keys, versions and compare-and-set, durability; stored bytes kept verbatim. */
export const suiteRecords = (
  it: SuiteIt,
  options: GrantStoreConformanceOptions,
  makeLayer: () => Layer.Layer<GrantStore, unknown, never>
): void => {
  const { capabilities } = options
  const notDurable = !capabilities.durable

  describe("grants", () => {
    it.effect("get of a missing key is None", () =>
      Effect.gen(function* () {
        const driver = yield* store
        expect(Option.isNone(yield* driver.get(key(freshTenant())))).toBe(true)
      })
    )

    it.effect("insert then get round-trips every field of a full record", () =>
      Effect.gen(function* () {
        const record = fullRecord(key(freshTenant(), "Zoë-用户-🔑"))
        const driver = yield* storeWith(record)
        expect(yield* driver.get(record)).toEqual(Option.some(record))
      })
    )

    it.effect("insert then get round-trips nulls and empty arrays", () =>
      Effect.gen(function* () {
        const record = minimalRecord(key(freshTenant()))
        const driver = yield* storeWith(record)
        expect(yield* driver.get(record)).toEqual(Option.some(record))
      })
    )

    it.effect("keys are exact: case, whitespace, separators and unicode forms are distinct keys", () =>
      Effect.gen(function* () {
        const driver = yield* store
        const tenant = freshTenant()
        const subjects = ["alice", "Alice", "alice ", "a/b", "a%2Fb", "\u00e9", "e\u0301", "ä"]
        for (const subject of subjects) {
          expect(yield* driver.insert(minimalRecord(key(tenant, subject)))).toBe("ok")
        }
        for (const subject of subjects) {
          const found = yield* driver.get(key(tenant, subject))
          expect(Option.map(found, (r) => r.subject)).toEqual(Option.some(subject))
        }
        expect((yield* driver.list({ tenant }, null, 100)).length).toBe(subjects.length)
      })
    )

    it.effect("insert of an existing key answers exists and leaves the original untouched", () =>
      Effect.gen(function* () {
        const original = fullRecord(key(freshTenant()))
        const driver = yield* storeWith(original)
        expect(yield* driver.insert(minimalRecord(original, { refreshToken: fakeEnvelope() }))).toBe("exists")
        expect(yield* driver.get(original)).toEqual(Option.some(original))
      })
    )

    it.effect("compareAndSet from the stored version writes the next record", () =>
      Effect.gen(function* () {
        const v1 = fullRecord(key(freshTenant()))
        const driver = yield* storeWith(v1)
        const v2 = nextVersion(v1, { accessToken: null, status: "active", identity: null })
        expect(yield* driver.compareAndSet(v1, 1, v2)).toBe("ok")
        expect(yield* driver.get(v1)).toEqual(Option.some(v2))
        const v3 = nextVersion(v2, { scopes: ["openid"], lastErrorCode: "invalid_grant" })
        expect(yield* driver.compareAndSet(v1, 2, v3)).toBe("ok")
        expect(yield* driver.get(v1)).toEqual(Option.some(v3))
      })
    )

    it.effect("compareAndSet from a stale version is a conflict and leaves the record untouched", () =>
      Effect.gen(function* () {
        const v1 = fullRecord(key(freshTenant()))
        const driver = yield* storeWith(v1)
        const v2 = nextVersion(v1)
        yield* driver.compareAndSet(v1, 1, v2)
        expect(yield* driver.compareAndSet(v1, 1, nextVersion(v1))).toBe("conflict")
        expect(yield* driver.compareAndSet(v1, 3, nextVersion(v2, { version: 4 }))).toBe("conflict")
        expect(yield* driver.get(v1)).toEqual(Option.some(v2))
      })
    )

    it.effect("compareAndSet of a missing record is a conflict and creates nothing", () =>
      Effect.gen(function* () {
        const driver = yield* store
        const k = key(freshTenant())
        expect(yield* driver.compareAndSet(k, 1, nextVersion(minimalRecord(k)))).toBe("conflict")
        expect(yield* driver.compareAndSet(k, 0, minimalRecord(k))).toBe("conflict")
        expect(Option.isNone(yield* driver.get(k))).toBe(true)
      })
    )

    it.effect("concurrent compareAndSet from the same version: exactly one wins", () =>
      Effect.gen(function* () {
        const v1 = minimalRecord(key(freshTenant()))
        const driver = yield* storeWith(v1)
        const candidates = Array.from({ length: 16 }, () => nextVersion(v1))
        const results = yield* Effect.forEach(candidates, (next) => driver.compareAndSet(v1, 1, next), {
          concurrency: "unbounded"
        })
        expect(results.filter((r) => r === "ok")).toHaveLength(1)
        const winner = candidates[results.indexOf("ok")]
        expect(yield* driver.get(v1)).toEqual(Option.some(winner))
      })
    )

    it.effect("delete answers whether a record was there", () =>
      Effect.gen(function* () {
        const record = minimalRecord(key(freshTenant()))
        const other = minimalRecord(key(record.tenant, "bob"))
        const driver = yield* storeWith(record, other)
        expect(yield* driver.delete(record)).toBe(true)
        expect(Option.isNone(yield* driver.get(record))).toBe(true)
        expect(yield* driver.delete(record)).toBe(false)
        expect(yield* driver.get(other)).toEqual(Option.some(other))
        expect(yield* driver.insert(record)).toBe("ok")
      })
    )

    it.effect("versions of a key never repeat after delete and re-insert: a stale writer is fenced", () =>
      Effect.gen(function* () {
        const driver = yield* store
        const k = key(freshTenant())
        let highest = 0
        for (let generation = 0; generation < 3; generation++) {
          // every generation is inserted as a fresh grant (version 1, as core writes it)
          expect(yield* driver.insert(minimalRecord(k))).toBe("ok")
          const inserted = yield* driver.get(k)
          const start = Option.match(inserted, { onNone: () => 0, onSome: (r) => r.version })
          expect(start).toBeGreaterThan(highest)
          // a writer that read an earlier generation must not land on this one
          for (let stale = 1; stale <= highest; stale++) {
            expect(yield* driver.compareAndSet(k, stale, minimalRecord(k, { version: stale + 1 }))).toBe(
              "conflict"
            )
          }
          const v1 = Option.getOrThrow(inserted)
          const v2 = nextVersion(v1)
          expect(yield* driver.compareAndSet(k, v1.version, v2)).toBe("ok")
          expect(Option.map(yield* driver.get(k), (r) => r.version)).toEqual(Option.some(v1.version + 1))
          highest = v2.version
          expect(yield* driver.delete(k)).toBe(true)
          expect(Option.isNone(yield* driver.get(k))).toBe(true)
          expect(yield* driver.compareAndSet(k, highest, nextVersion(v2))).toBe("conflict")
        }
        // a key deleted and never re-inserted stays absent from listings
        expect(yield* driver.list({ tenant: k.tenant }, null, 10)).toEqual([])
      })
    )

    it.effect.skipIf(notDurable)(
      `records outlive the store instance${notDurable ? " (skipped: store declares durable=false)" : ""}`,
      () =>
        Effect.gen(function* () {
          const record = fullRecord(key(freshTenant()))
          yield* storeWith(record)
          const again = yield* Effect.scoped(
            Effect.flatMap(Layer.build(makeLayer()), (context) =>
              GrantStore.pipe(
                Effect.provide(context),
                Effect.flatMap((other) => other.get(record))
              )
            )
          )
          expect(again).toEqual(Option.some(record))
        })
    )
  })

  describe("stored bytes", () => {
    const dump = options.rawDump
    it.effect.skipIf(dump === undefined)(
      `envelopes are stored verbatim, never transformed${dump === undefined ? " (skipped: no rawDump option given)" : ""}`,
      () =>
        Effect.gen(function* () {
          const record = fullRecord(key(freshTenant()))
          const pending = pendingRecord(record.tenant, yield* Clock.currentTimeMillis)
          const driver = yield* storeWith(record)
          yield* driver.putPending(freshStateHash(), pending)
          const raw = yield* Effect.orDie(dump === undefined ? Effect.succeed("") : dump())
          for (const envelope of [
            record.refreshToken,
            record.accessToken?.envelope ?? "",
            pending.codeVerifier,
            pending.nonce
          ]) {
            expect(raw).toContain(envelope)
          }
          expect(yield* driver.get(record)).toEqual(Option.some(record))
        })
    )
  })
}
