/**
 * The outage suite of a store on a database server: calls fail with `StorageUnavailable` (naming the
 * operation, never a subject or a token) while the server is down and succeed again on the same layer when
 * it is back; a server that cannot be reached at start is a clear `StorageUnavailable`. The store's test
 * file starts a private server (never the machine's shared one) and says how to build the layer on it.
 */
import { describe, expect, it } from "@effect/vitest"
import type { ConfigInvalid, StorageUnavailable } from "@token-broker/core"
import { GrantStore } from "@token-broker/core"
import { fullRecord } from "@token-broker/core/testing"
import { Duration, Effect, Layer, Option } from "effect"
import { afterAll, beforeAll } from "vitest"

/** A private database server the suite may stop and start. */
export interface StoppableServer {
  readonly stop: () => void | Promise<void>
  readonly start: () => void | Promise<void>
  readonly destroy: () => void | Promise<void>
}

export interface OutageHarness<S extends StoppableServer> {
  /** The store's name in test titles ("PgGrantStore"). */
  readonly name: string
  readonly startServer: () => Promise<S>
  /** The store on `server`, migrated, with a short connect timeout. */
  readonly layer: (server: S) => Layer.Layer<GrantStore.GrantStore, StorageUnavailable | ConfigInvalid>
  /** The store on an address where nothing listens. */
  readonly unreachable: () => Layer.Layer<GrantStore.GrantStore, StorageUnavailable | ConfigInvalid>
  /** What the start-up error's message must say. */
  readonly unreachableMessage: RegExp
}

export const outageSuite = <S extends StoppableServer>(harness: OutageHarness<S>): void => {
  let server: S | undefined
  beforeAll(async () => {
    server = await harness.startServer()
  }, 180_000)
  afterAll(() => server?.destroy(), 60_000)

  describe(`${harness.name} when the server goes away`, () => {
    it.live(
      "calls fail with StorageUnavailable while the server is down, then succeed on the same layer",
      () =>
        Effect.gen(function* () {
          const running = server as S
          const store = yield* Effect.provide(
            GrantStore.GrantStore,
            yield* Layer.build(harness.layer(running))
          )
          const subjectRecord = (i: number) =>
            fullRecord({ tenant: "acme", subject: `secret-subject-${i}`, provider: "nextcloud" })
          const first = subjectRecord(0)
          const records = [first, ...Array.from({ length: 9 }, (_, i) => subjectRecord(i + 1))]
          for (const r of records) expect(yield* store.insert(r)).toBe("ok")

          yield* Effect.promise(async () => running.stop())
          const down = yield* Effect.flip(store.get(first))
          expect(down._tag).toBe("StorageUnavailable")
          expect(down.operation).toBe("GrantStore.get")
          expect(down.message).not.toContain("secret-subject")
          expect(down.message).not.toContain(first.refreshToken)
          const downWrite = yield* Effect.flip(
            store.insert(fullRecord({ tenant: "acme", subject: "late", provider: "x" }))
          )
          expect(downWrite._tag).toBe("StorageUnavailable")
          expect(downWrite.message).not.toContain("late")
          const downLease = yield* Effect.flip(store.acquireLease("lease", "owner", Duration.seconds(10)))
          expect(downLease._tag).toBe("StorageUnavailable")

          yield* Effect.promise(async () => running.start())
          expect(yield* store.get(first)).toEqual(Option.some(records[0]))
          expect(yield* store.list({ tenant: "acme" }, null, 100)).toHaveLength(records.length)
          expect(Option.isNone(yield* store.get({ tenant: "acme", subject: "late", provider: "x" }))).toBe(
            true
          )
          expect(yield* store.acquireLease("lease", "owner", Duration.seconds(10))).toBe(true)
        }).pipe(Effect.scoped),
      180_000
    )

    it.live("a store that cannot reach the server at start fails with a clear StorageUnavailable", () =>
      Effect.gen(function* () {
        const error = yield* Effect.flip(Layer.build(harness.unreachable()).pipe(Effect.scoped))
        expect(error._tag).toBe("StorageUnavailable")
        expect(error.message).toMatch(harness.unreachableMessage)
      })
    )
  })
}
