import { describe, expect, it } from "@effect/vitest"
import { GrantStore } from "@token-broker/core"
import { fullRecord } from "@token-broker/core/testing"
import { type PrivateCluster, startPrivateCluster } from "@token-broker/storage-postgres/testing"
import { Duration, Effect, Layer, Option } from "effect"
import { afterAll, beforeAll } from "vitest"
import { PgGrantStore } from "../src/index.js"

// A private throwaway cluster: the machine's shared server is never stopped.
let cluster: PrivateCluster
beforeAll(async () => {
  cluster = await startPrivateCluster()
}, 180_000)
afterAll(() => cluster?.destroy())

describe("PgGrantStore when the server goes away", () => {
  it.live(
    "calls fail with StorageUnavailable while the server is down, then succeed on the same layer",
    () =>
      Effect.gen(function* () {
        const context = yield* Layer.build(
          PgGrantStore.layer({
            url: cluster.url,
            schema: "tb_outage",
            migrate: true,
            connectTimeout: "1 second"
          })
        )
        const store = yield* Effect.provide(GrantStore.GrantStore, context)
        const records = Array.from({ length: 10 }, (_, i) =>
          fullRecord({ tenant: "acme", subject: `secret-subject-${i}`, provider: "nextcloud" })
        )
        for (const r of records) expect(yield* store.insert(r)).toBe("ok")

        cluster.stop()
        const down = yield* Effect.flip(store.get(records[0]!))
        expect(down._tag).toBe("StorageUnavailable")
        expect(down.operation).toBe("GrantStore.get")
        expect(down.message).not.toContain("secret-subject")
        expect(down.message).not.toContain(records[0]!.refreshToken)
        const downWrite = yield* Effect.flip(
          store.insert(fullRecord({ tenant: "acme", subject: "late", provider: "x" }))
        )
        expect(downWrite._tag).toBe("StorageUnavailable")
        expect(downWrite.message).not.toContain("late")
        const downLease = yield* Effect.flip(store.acquireLease("lease", "owner", Duration.seconds(10)))
        expect(downLease._tag).toBe("StorageUnavailable")

        cluster.start()
        expect(yield* store.get(records[0]!)).toEqual(Option.some(records[0]))
        const all = yield* store.list({ tenant: "acme" }, null, 100)
        expect(all).toHaveLength(records.length)
        expect(Option.isNone(yield* store.get({ tenant: "acme", subject: "late", provider: "x" }))).toBe(true)
        expect(yield* store.acquireLease("lease", "owner", Duration.seconds(10))).toBe(true)
      }).pipe(Effect.scoped),
    180_000
  )

  it.live("a store that cannot reach the server at start fails with a clear StorageUnavailable", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(
        Layer.build(
          PgGrantStore.layer({
            url: "postgres://postgres@127.0.0.1:1/test",
            schema: "tb_x",
            connectTimeout: "1 second"
          })
        ).pipe(Effect.scoped)
      )
      expect(error._tag).toBe("StorageUnavailable")
      expect(error.message).toMatch(/postgres storage failed during connect/)
    })
  )
})
