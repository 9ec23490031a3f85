import { describe, expect, it } from "@effect/vitest"
import { GrantStore } from "@token-broker/core"
import { fullRecord } from "@token-broker/core/testing"
import { Duration, Effect, Layer, Option } from "effect"
import { afterAll, beforeAll } from "vitest"
import { MysqlGrantStore } from "../src/index.js"
import { type PrivateServer, startPrivateServer } from "../src/testing.js"

// A private throwaway server: the machine's shared MariaDB is never stopped.
let server: PrivateServer
beforeAll(async () => {
  server = await startPrivateServer()
}, 180_000)
afterAll(() => server?.destroy(), 60_000)

describe("MysqlGrantStore when the server goes away", () => {
  it.live(
    "calls fail with StorageUnavailable while the server is down, then succeed on the same layer",
    () =>
      Effect.gen(function* () {
        const context = yield* Layer.build(
          MysqlGrantStore.layer({ url: server.url("tb_outage"), migrate: true, connectTimeout: "1 second" })
        )
        const store = yield* Effect.provide(GrantStore.GrantStore, context)
        const records = Array.from({ length: 10 }, (_, i) =>
          fullRecord({ tenant: "acme", subject: `secret-subject-${i}`, provider: "nextcloud" })
        )
        for (const r of records) expect(yield* store.insert(r)).toBe("ok")

        yield* Effect.promise(() => server.stop())
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

        yield* Effect.promise(() => server.start())
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
          MysqlGrantStore.layer({ url: "mysql://root@127.0.0.1:1/tb_x", connectTimeout: "1 second" })
        ).pipe(Effect.scoped)
      )
      expect(error._tag).toBe("StorageUnavailable")
      expect(error.message).toMatch(/mysql storage failed during connect.*ECONNREFUSED/)
    })
  )
})
