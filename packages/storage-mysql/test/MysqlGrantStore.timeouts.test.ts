import { describe, expect, it } from "@effect/vitest"
import { GrantStore } from "@token-broker/core"
import { fullRecord } from "@token-broker/core/testing"
import { Effect, Layer, Option } from "effect"
import Mysql from "mysql2/promise"
import { afterAll } from "vitest"
import { MysqlGrantStore } from "../src/index.js"
import { dropDatabase, freshDatabase, urlOf, withConnection } from "./mariadb.js"

const database = freshDatabase("tb_timeout")
afterAll(() => dropDatabase(database))

describe("MysqlGrantStore statement timeout", () => {
  // The server's own innodb_lock_wait_timeout (50 s by default) is longer than this test's 30 s budget:
  // only the store's per-statement setting makes the write give up in time.
  it.live(
    "a write blocked by another session's row lock fails with StorageUnavailable after statementTimeout",
    () =>
      Effect.gen(function* () {
        const [rows] = yield* Effect.promise(() =>
          withConnection((conn) => conn.query("SELECT @@GLOBAL.innodb_lock_wait_timeout AS wait"))
        )
        expect(Number((rows as Array<{ wait: number }>)[0]?.wait)).toBeGreaterThan(30)
        const record = fullRecord({ tenant: "acme", subject: "secret-subject", provider: "nextcloud" })
        const options = { url: urlOf(database), migrate: true, statementTimeout: "1 second" } as const
        const store = yield* Effect.provide(
          GrantStore.GrantStore,
          yield* Layer.build(MysqlGrantStore.layer(options))
        )
        expect(yield* store.insert(record)).toBe("ok")
        const holder = yield* Effect.acquireRelease(
          Effect.promise(() => Mysql.createConnection({ uri: urlOf(database) })),
          (conn) => Effect.promise(() => conn.rollback().then(() => conn.end()))
        )
        yield* Effect.promise(async () => {
          await holder.beginTransaction()
          await holder.query("SELECT * FROM grants WHERE subject = 'secret-subject' FOR UPDATE")
        })
        const error = yield* Effect.flip(
          store.compareAndSet(record, record.version, { ...record, version: record.version + 1 })
        )
        expect(error._tag).toBe("StorageUnavailable")
        expect(error.operation).toBe("GrantStore.compareAndSet")
        expect(error.message).toMatch(/ER_LOCK_WAIT_TIMEOUT|errno 1969/)
        expect(error.message).not.toContain("secret-subject")
        yield* Effect.promise(() => holder.rollback())
        expect(yield* store.get(record)).toEqual(Option.some(record))
      }).pipe(Effect.scoped),
    30_000
  )
})
