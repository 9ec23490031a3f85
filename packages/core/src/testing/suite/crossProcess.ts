import { describe, expect } from "@effect/vitest"
import { Clock, Duration, Effect, Option } from "effect"
import { spawnChildStore } from "../childProcess.js"
import { freshTenant, minimalRecord } from "../fixtures.js"
import type { GrantStoreConformanceOptions } from "../suite.js"
import { key, lease, owner, type SuiteIt, store } from "./shared.js"

/** Leases across processes: a child process builds the same store and contends for the lease. */
export const suiteCrossProcess = (it: SuiteIt, options: GrantStoreConformanceOptions): void => {
  const { capabilities } = options
  const notCrossProcess = !capabilities.crossProcessLeases

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
          expect(Option.map(final, (r) => r.version)).toEqual(Option.some(1 + children.length * iterations))
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
}
