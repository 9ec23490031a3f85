import { join } from "node:path"
import * as MysqlClient from "@effect/sql-mysql2/MysqlClient"
import { describe, expect, it } from "@effect/vitest"
import { migrationSuite } from "@token-broker/storage-sql/testing"
import { Effect, Layer, Redacted } from "effect"
import { afterAll } from "vitest"
import { MysqlGrantStore } from "../src/index.js"
import { dropDatabase, freshDatabase, urlOf, withConnection } from "./mariadb.js"

const databases: Array<string> = []
afterAll(() => Promise.all(databases.map(dropDatabase)))

migrationSuite({
  name: "MysqlGrantStore",
  place: "database",
  currentVersion: MysqlGrantStore.schemaVersion,
  fresh: () => {
    const database = freshDatabase("tb_mig")
    databases.push(database)
    return { database, url: urlOf(database) }
  },
  createEmpty: ({ database }) =>
    Effect.promise(() => withConnection((conn) => conn.query(`CREATE DATABASE \`${database}\``))),
  migrate: ({ url }, toVersion) => MysqlGrantStore.migrate({ url, toVersion }),
  layer: ({ url }) => MysqlGrantStore.layer({ url }),
  sql: ({ url }) => MysqlClient.layer({ url: Redacted.make(url) }),
  table: ({ database }, name) => `${database}.${name}`,
  child: ({ url }) => ({ script: join(import.meta.dirname, "migrate-child.ts"), args: [url] })
})

describe("MysqlGrantStore migrate options", () => {
  it.live("a URL that is not a mysql:// URL with a plain database name is ConfigInvalid naming the url", () =>
    Effect.gen(function* () {
      for (const url of ["postgres://root@127.0.0.1/test", "not a url", "mysql://root@127.0.0.1/a;DROP"]) {
        const error = yield* Effect.flip(MysqlGrantStore.migrate({ url }))
        expect(error._tag).toBe("ConfigInvalid")
        expect(error).toMatchObject({ field: "url" })
      }
      const started = yield* Effect.flip(
        Layer.build(MysqlGrantStore.layer({ url: "mysql://root@127.0.0.1:3306/" })).pipe(Effect.scoped)
      )
      expect(started._tag).toBe("ConfigInvalid")
    })
  )
})
