import { randomUUID } from "node:crypto"
import { describe, expect, layer } from "@effect/vitest"
import { Clock, Deferred, Duration, Effect, Exit, Fiber, Layer, Option, Ref } from "effect"
import { compareKeys, type GrantFilter, type GrantKey, type GrantRecord } from "../Grant.js"
import {
  GrantStore,
  type GrantStoreCapabilities,
  type GrantStoreDriver,
  LeaseLost,
  withLease
} from "../GrantStore.js"
import { type ChildStoreSpec, spawnChildStore } from "./childProcess.js"
import {
  fakeEnvelope,
  freshStateHash,
  freshTenant,
  fullRecord,
  minimalRecord,
  nextVersion,
  pendingRecord
} from "./fixtures.js"

export interface GrantStoreConformanceOptions {
  /**
   * What the store declares (`capabilities` of the built store). Needed before the store is built, to
   * register the tests a store lacks as skipped with the reason; the first test checks that the built
   * store declares exactly these.
   */
  readonly capabilities: GrantStoreCapabilities
  /**
   * How a child process builds the same store (same file, same database and schema), for the tests of
   * leases across processes. Required when `capabilities.crossProcessLeases` is true. The child runs
   * `node --import tsx`, so the package running the suite needs `tsx` among its devDependencies.
   */
  readonly child?: ChildStoreSpec | undefined
  /**
   * Every byte the store holds, as text (e.g. the database file and its WAL, or a dump of the tables).
   * When given, the suite checks that stored secrets (KeyRing envelopes) are kept verbatim.
   */
  readonly rawDump?: (() => Effect.Effect<string, unknown>) | undefined
}

const key = (tenant: string, subject = "alice", provider = "nextcloud"): GrantKey => ({
  tenant,
  subject,
  provider
})

const store = GrantStore
const lease = (): string => `lease-${randomUUID()}`
const owner = (label: string): string => `${label}-${randomUUID()}`

/** Every page of `list(filter)` with page size `size`, concatenated. */
const listAll = (driver: GrantStoreDriver, filter: GrantFilter, size: number) =>
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

const keysOf = (records: ReadonlyArray<GrantKey>) =>
  records.map((r) => ({ tenant: r.tenant, subject: r.subject, provider: r.provider }))

const sortedKeys = (records: ReadonlyArray<GrantKey>) => keysOf([...records].sort(compareKeys))

/**
 * Registers the GrantStore conformance suite (vitest, via `@effect/vitest`) against the store built by
 * `makeLayer`. The layer is built once for the suite and the tests share no state (each uses its own
 * random tenant, lease names and state hashes), so the suite can run against one long-lived database.
 *
 * ```ts
 * grantStoreConformance("sqlite", () => SqliteGrantStore.layer({ filename }), {
 *   capabilities: { crossProcessLeases: true, durable: true },
 *   child: { module: "@token-broker/storage-sqlite", export: "layer", options: { filename } }
 * })
 * ```
 */
export const grantStoreConformance = (
  name: string,
  makeLayer: () => Layer.Layer<GrantStore, unknown, never>,
  options: GrantStoreConformanceOptions
): void => {
  const { capabilities } = options
  const notCrossProcess = !capabilities.crossProcessLeases
  const notDurable = !capabilities.durable

  layer(makeLayer(), { excludeTestServices: true, timeout: Duration.seconds(180) })(
    `GrantStore conformance: ${name}`,
    (it) => {
      it.effect("the store declares the capabilities the suite was given", () =>
        Effect.gen(function* () {
          const driver = yield* store
          expect(driver.capabilities).toEqual(capabilities)
        })
      )

      describe("grants", () => {
        it.effect("get of a missing key is None", () =>
          Effect.gen(function* () {
            const driver = yield* store
            expect(Option.isNone(yield* driver.get(key(freshTenant())))).toBe(true)
          })
        )

        it.effect("insert then get round-trips every field of a full record", () =>
          Effect.gen(function* () {
            const driver = yield* store
            const record = fullRecord(key(freshTenant(), "Zoë-用户-🔑"))
            expect(yield* driver.insert(record)).toBe("ok")
            expect(yield* driver.get(record)).toEqual(Option.some(record))
          })
        )

        it.effect("insert then get round-trips nulls and empty arrays", () =>
          Effect.gen(function* () {
            const driver = yield* store
            const record = minimalRecord(key(freshTenant()))
            expect(yield* driver.insert(record)).toBe("ok")
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
            const driver = yield* store
            const original = fullRecord(key(freshTenant()))
            expect(yield* driver.insert(original)).toBe("ok")
            expect(yield* driver.insert(minimalRecord(original, { refreshToken: fakeEnvelope() }))).toBe(
              "exists"
            )
            expect(yield* driver.get(original)).toEqual(Option.some(original))
          })
        )

        it.effect("compareAndSet from the stored version writes the next record", () =>
          Effect.gen(function* () {
            const driver = yield* store
            const v1 = fullRecord(key(freshTenant()))
            yield* driver.insert(v1)
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
            const driver = yield* store
            const v1 = fullRecord(key(freshTenant()))
            yield* driver.insert(v1)
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
            const driver = yield* store
            const v1 = minimalRecord(key(freshTenant()))
            yield* driver.insert(v1)
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
            const driver = yield* store
            const record = minimalRecord(key(freshTenant()))
            const other = minimalRecord(key(record.tenant, "bob"))
            yield* driver.insert(record)
            yield* driver.insert(other)
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
              const driver = yield* store
              const record = fullRecord(key(freshTenant()))
              yield* driver.insert(record)
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
              ["nextcloud", "github", "Git-Lab"].map((provider) =>
                minimalRecord(key(tenant, subject, provider))
              )
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
            const originals = ["b", "d", "f", "h", "j", "l", "n", "p"].map((s) =>
              minimalRecord(key(tenant, s))
            )
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

      describe("leases", () => {
        const ttl = Duration.seconds(10)

        it.effect("a lease excludes other owners until released", () =>
          Effect.gen(function* () {
            const driver = yield* store
            const [name, a, b] = [lease(), owner("a"), owner("b")]
            expect(yield* driver.acquireLease(name, a, ttl)).toBe(true)
            expect(yield* driver.acquireLease(name, b, ttl)).toBe(false)
            yield* driver.releaseLease(name, a)
            expect(yield* driver.acquireLease(name, b, ttl)).toBe(true)
            expect(yield* driver.acquireLease(name, a, ttl)).toBe(false)
            expect(yield* driver.acquireLease(lease(), a, ttl)).toBe(true)
          })
        )

        it.effect("the owner may acquire again (re-entrant) and renew; others may not renew", () =>
          Effect.gen(function* () {
            const driver = yield* store
            const [name, a, b] = [lease(), owner("a"), owner("b")]
            expect(yield* driver.renewLease(name, a, ttl)).toBe(false)
            expect(yield* driver.acquireLease(name, a, ttl)).toBe(true)
            expect(yield* driver.acquireLease(name, a, ttl)).toBe(true)
            expect(yield* driver.renewLease(name, b, ttl)).toBe(false)
            expect(yield* driver.renewLease(name, a, ttl)).toBe(true)
            expect(yield* driver.acquireLease(name, b, ttl)).toBe(false)
          })
        )

        it.effect("release by another owner does nothing (F4)", () =>
          Effect.gen(function* () {
            const driver = yield* store
            const [name, a, b] = [lease(), owner("a"), owner("b")]
            expect(yield* driver.acquireLease(name, a, ttl)).toBe(true)
            yield* driver.releaseLease(name, b)
            expect(yield* driver.acquireLease(name, b, ttl)).toBe(false)
            expect(yield* driver.renewLease(name, a, ttl)).toBe(true)
            yield* driver.releaseLease(lease(), a)
          })
        )

        it.effect("a lease expires after its ttl; the expired owner can no longer renew it", () =>
          Effect.gen(function* () {
            const driver = yield* store
            const [name, a, b] = [lease(), owner("a"), owner("b")]
            expect(yield* driver.acquireLease(name, a, Duration.millis(400))).toBe(true)
            expect(yield* driver.acquireLease(name, b, ttl)).toBe(false)
            yield* Effect.sleep(Duration.millis(700))
            expect(yield* driver.renewLease(name, a, ttl)).toBe(false)
            expect(yield* driver.acquireLease(name, b, ttl)).toBe(true)
            expect(yield* driver.acquireLease(name, a, ttl)).toBe(false)
            expect(yield* driver.renewLease(name, b, ttl)).toBe(true)
          })
        )

        it.effect("withLease runs effects one at a time under contention", () =>
          Effect.gen(function* () {
            const driver = yield* store
            const name = lease()
            const inside = yield* Ref.make(0)
            const most = yield* Ref.make(0)
            const runs = yield* Ref.make(0)
            const critical = Effect.gen(function* () {
              const n = yield* Ref.updateAndGet(inside, (x) => x + 1)
              yield* Ref.update(most, (m) => Math.max(m, n))
              yield* Effect.sleep(Duration.millis(15))
              yield* Ref.update(inside, (x) => x - 1)
              yield* Ref.update(runs, (x) => x + 1)
            })
            yield* Effect.forEach(
              Array.from({ length: 8 }, () => owner("w")),
              (o) => withLease(driver, name, o, { ttl, wait: Duration.seconds(20) }, critical),
              { concurrency: "unbounded", discard: true }
            )
            expect(yield* Ref.get(runs)).toBe(8)
            expect(yield* Ref.get(most)).toBe(1)
          })
        )

        it.effect("withLease renews the lease while the effect runs longer than the ttl", () =>
          Effect.gen(function* () {
            const driver = yield* store
            const [name, a, b] = [lease(), owner("a"), owner("b")]
            // Real time is unavoidable (SQL stores keep leases on the database clock), so the window is
            // wide: a 3 s lease, renewed every second, checked 4.5 s after it was taken. Only a renewal
            // that never happens (or an event loop stalled for two seconds) lets b in.
            const short = Duration.seconds(3)
            const held = yield* Deferred.make<void>()
            const done = yield* Deferred.make<void>()
            const fiber = yield* Effect.fork(
              withLease(
                driver,
                name,
                a,
                { ttl: short, wait: ttl },
                Deferred.succeed(held, undefined).pipe(Effect.zipRight(Deferred.await(done)))
              )
            )
            yield* Deferred.await(held)
            yield* Effect.sleep(Duration.millis(4500))
            expect(yield* driver.acquireLease(name, b, ttl)).toBe(false)
            yield* Deferred.succeed(done, undefined)
            expect(Exit.isSuccess(yield* Fiber.await(fiber))).toBe(true)
            expect(yield* driver.acquireLease(name, b, ttl)).toBe(true)
          })
        )

        it.effect("withLease releases the lease when the effect fails", () =>
          Effect.gen(function* () {
            const driver = yield* store
            const [name, a, b] = [lease(), owner("a"), owner("b")]
            const exit = yield* Effect.exit(
              withLease(driver, name, a, { ttl, wait: ttl }, Effect.fail("boom"))
            )
            expect(exit).toEqual(Exit.fail("boom"))
            expect(yield* driver.acquireLease(name, b, ttl)).toBe(true)
          })
        )

        it.effect("withLease releases the lease when interrupted", () =>
          Effect.gen(function* () {
            const driver = yield* store
            const [name, a, b] = [lease(), owner("a"), owner("b")]
            const held = yield* Deferred.make<void>()
            const fiber = yield* Effect.fork(
              withLease(
                driver,
                name,
                a,
                { ttl, wait: ttl },
                Deferred.succeed(held, undefined).pipe(Effect.zipRight(Effect.never))
              )
            )
            yield* Deferred.await(held)
            expect(yield* driver.acquireLease(name, b, ttl)).toBe(false)
            yield* Fiber.interrupt(fiber)
            expect(yield* driver.acquireLease(name, b, ttl)).toBe(true)
          })
        )

        it.effect("withLease fails with LeaseLost when another owner took the lease over", () =>
          Effect.gen(function* () {
            const driver = yield* store
            const [name, a, b] = [lease(), owner("a"), owner("b")]
            const short = Duration.millis(300)
            const held = yield* Deferred.make<void>()
            const fiber = yield* Effect.fork(
              withLease(
                driver,
                name,
                a,
                { ttl: short, wait: ttl },
                Deferred.succeed(held, undefined).pipe(Effect.zipRight(Effect.never))
              )
            )
            yield* Deferred.await(held)
            // simulate a holder whose renewals stall: the lease row is taken over after a release
            yield* driver.releaseLease(name, a)
            expect(yield* driver.acquireLease(name, b, ttl)).toBe(true)
            const exit = yield* Fiber.await(fiber)
            expect(exit).toEqual(Exit.fail(new LeaseLost(name)))
            expect(yield* driver.renewLease(name, b, ttl)).toBe(true)
          })
        )
      })

      describe("leases across processes", () => {
        const reason = notCrossProcess ? " (skipped: store declares crossProcessLeases=false)" : ""
        const child = options.child
        const needsChild = Effect.suspend(() =>
          child === undefined
            ? Effect.dieMessage(
                "the store declares crossProcessLeases=true: pass options.child so the suite can build it in a child process"
              )
            : Effect.succeed(child)
        )
        const ttl = Duration.seconds(10)

        it.scoped.skipIf(notCrossProcess)(`a lease held in another process excludes this one${reason}`, () =>
          Effect.gen(function* () {
            const driver = yield* store
            const other = yield* spawnChildStore(yield* needsChild)
            const [name, a, b] = [lease(), owner("parent"), owner("child")]
            expect(yield* other.call({ op: "acquire", name, owner: b, ttlMs: 10_000 })).toBe(true)
            expect(yield* driver.acquireLease(name, a, ttl)).toBe(false)
            expect(yield* driver.renewLease(name, a, ttl)).toBe(false)
            yield* driver.releaseLease(name, a)
            expect(yield* other.call({ op: "renew", name, owner: b, ttlMs: 10_000 })).toBe(true)
            yield* other.call({ op: "release", name, owner: b })
            expect(yield* driver.acquireLease(name, a, ttl)).toBe(true)
            expect(yield* other.call({ op: "acquire", name, owner: b, ttlMs: 10_000 })).toBe(false)
          })
        )

        it.scoped.skipIf(notCrossProcess)(
          `withLease serializes writers in several processes: no compare-and-set conflict${reason}`,
          () =>
            Effect.gen(function* () {
              const driver = yield* store
              const spec = yield* needsChild
              const children = yield* Effect.all([spawnChildStore(spec), spawnChildStore(spec)], {
                concurrency: "unbounded"
              })
              const name = lease()
              const record = minimalRecord(key(freshTenant()))
              yield* driver.insert(record)
              const iterations = 6
              const results = yield* Effect.all(
                children.map((c) =>
                  c.call({
                    op: "incrementUnderLease",
                    name,
                    owner: owner("child"),
                    key: record,
                    iterations,
                    holdMs: 10,
                    ttlMs: 5_000
                  })
                ),
                { concurrency: "unbounded" }
              )
              expect(results).toEqual(children.map(() => ({ conflicts: 0 })))
              const final = yield* driver.get(record)
              expect(Option.map(final, (r) => r.version)).toEqual(
                Option.some(1 + children.length * iterations)
              )
            })
        )

        it.scoped.skipIf(notCrossProcess)(
          `the lease of a SIGKILLed holder is taken over once it expires, not before${reason}`,
          () =>
            Effect.gen(function* () {
              const driver = yield* store
              const holder = yield* spawnChildStore(yield* needsChild)
              const [name, a] = [lease(), owner("parent")]
              const ttlMs = 2_000
              const start = yield* Clock.currentTimeMillis
              expect(yield* holder.call({ op: "acquire", name, owner: owner("child"), ttlMs })).toBe(true)
              yield* holder.kill
              expect(yield* driver.acquireLease(name, a, ttl)).toBe(false)
              let takenAt = 0
              while (takenAt === 0) {
                const now = yield* Clock.currentTimeMillis
                if (yield* driver.acquireLease(name, a, ttl)) takenAt = now
                else if (now - start > ttlMs + 5_000) break
                else yield* Effect.sleep(Duration.millis(50))
              }
              expect(takenAt).toBeGreaterThan(0)
              // not before the ttl (counted from before the child acquired; a small allowance for the
              // lease clock of another process or server)
              expect(takenAt - start).toBeGreaterThanOrEqual(ttlMs - 250)
            })
        )
      })

      describe("pending authorizations", () => {
        it.effect("put then take returns the record once", () =>
          Effect.gen(function* () {
            const driver = yield* store
            const state = freshStateHash()
            const record = pendingRecord(freshTenant(), yield* Clock.currentTimeMillis, {
              returnTo: "https://app.example.test/done?x=1&y=ü"
            })
            yield* driver.putPending(state, record)
            expect(yield* driver.takePending(state)).toEqual(Option.some(record))
            expect(Option.isNone(yield* driver.takePending(state))).toBe(true)
          })
        )

        it.effect("take of an unknown state is None", () =>
          Effect.gen(function* () {
            const driver = yield* store
            expect(Option.isNone(yield* driver.takePending(freshStateHash()))).toBe(true)
          })
        )

        it.effect("an expired pending authorization is never returned", () =>
          Effect.gen(function* () {
            const driver = yield* store
            const state = freshStateHash()
            const now = yield* Clock.currentTimeMillis
            yield* driver.putPending(
              state,
              pendingRecord(freshTenant(), now - 700_000, { expiresAt: now - 1 })
            )
            expect(Option.isNone(yield* driver.takePending(state))).toBe(true)
            const soon = freshStateHash()
            yield* driver.putPending(soon, pendingRecord(freshTenant(), now, { expiresAt: now + 300 }))
            yield* Effect.sleep(Duration.millis(450))
            expect(Option.isNone(yield* driver.takePending(soon))).toBe(true)
          })
        )

        it.effect("concurrent takes: exactly one gets the record", () =>
          Effect.gen(function* () {
            const driver = yield* store
            const state = freshStateHash()
            const record = pendingRecord(freshTenant(), yield* Clock.currentTimeMillis)
            yield* driver.putPending(state, record)
            const taken = yield* Effect.all(
              Array.from({ length: 12 }, () => driver.takePending(state)),
              { concurrency: "unbounded" }
            )
            expect(taken.filter(Option.isSome)).toEqual([Option.some(record)])
          })
        )

        it.effect("pending authorizations are independent of each other", () =>
          Effect.gen(function* () {
            const driver = yield* store
            const now = yield* Clock.currentTimeMillis
            const [s1, s2] = [freshStateHash(), freshStateHash()]
            const [r1, r2] = [pendingRecord(freshTenant(), now), pendingRecord(freshTenant(), now)]
            yield* driver.putPending(s1, r1)
            yield* driver.putPending(s2, r2)
            expect(yield* driver.takePending(s2)).toEqual(Option.some(r2))
            expect(yield* driver.takePending(s1)).toEqual(Option.some(r1))
          })
        )
      })

      describe("stored bytes", () => {
        const dump = options.rawDump
        it.effect.skipIf(dump === undefined)(
          `envelopes are stored verbatim, never transformed${dump === undefined ? " (skipped: no rawDump option given)" : ""}`,
          () =>
            Effect.gen(function* () {
              const driver = yield* store
              const record = fullRecord(key(freshTenant()))
              const pending = pendingRecord(record.tenant, yield* Clock.currentTimeMillis)
              yield* driver.insert(record)
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
  )
}
