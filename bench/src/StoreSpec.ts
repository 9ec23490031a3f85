import type { GrantStore } from "@token-broker/core"
import { MysqlGrantStore } from "@token-broker/storage-mysql"
import { PgGrantStore } from "@token-broker/storage-postgres"
import { SqliteGrantStore } from "@token-broker/storage-sqlite"
import { VaultGrantStore } from "@token-broker/storage-vault"
import { Effect, type Layer } from "effect"

/**
 * Which store a benchmark or a worker process builds, as plain JSON: a parent process hands the same
 * spec to every child, and each child builds its own instance with the store's own `layer(...)`.
 * Adding a backend is one more case here (and in `storeSql.ts` where raw SQL is needed).
 */
export type StoreSpec =
  | { readonly kind: "sqlite"; readonly options: SqliteGrantStore.SqliteGrantStoreOptions }
  | {
      readonly kind: "postgres"
      /** `url` is a plain string here: the spec crosses process boundaries as JSON. */
      readonly options: PgGrantStore.PgGrantStoreOptions & { readonly url: string; readonly schema: string }
    }
  | {
      readonly kind: "mysql"
      /** `url` (with its database) is a plain string here: the spec crosses process boundaries as JSON. */
      readonly options: MysqlGrantStore.MysqlGrantStoreOptions & { readonly url: string }
    }
  | {
      readonly kind: "vault"
      /** The token is a plain string here: the spec reaches workers over IPC, never on a command line. */
      readonly options: VaultGrantStore.VaultGrantStoreOptions & {
        readonly address: string
        readonly auth: { readonly token: string }
        readonly prefix: string
      }
    }

export type StoreKind = StoreSpec["kind"]

/** The GrantStore layer of a spec. */
export const storeLayer = (spec: StoreSpec): Layer.Layer<GrantStore.GrantStore, unknown> => {
  switch (spec.kind) {
    case "sqlite":
      return SqliteGrantStore.layer(spec.options)
    case "postgres":
      return PgGrantStore.layer(spec.options)
    case "mysql":
      return MysqlGrantStore.layer(spec.options)
    case "vault":
      return VaultGrantStore.layer(spec.options)
  }
}

/** Applies the store's migrations (creates the file, schema or MariaDB database). */
export const migrateStore = (spec: StoreSpec): Effect.Effect<void, unknown> => {
  switch (spec.kind) {
    case "sqlite":
      return Effect.asVoid(SqliteGrantStore.migrate(spec.options))
    case "postgres":
      return Effect.asVoid(PgGrantStore.migrate(spec.options))
    case "mysql":
      return Effect.asVoid(MysqlGrantStore.migrate(spec.options))
    case "vault":
      // KV v2 needs no schema: secrets are created on first write.
      return Effect.void
  }
}

/** A URL without its user info, for messages. */
export const withoutCredentials = (url: string): string => url.replace(/\/\/[^@/]*@/, "//")

/** Where the store lives, for printing (never a password). */
export const describeStore = (spec: StoreSpec): string => {
  switch (spec.kind) {
    case "sqlite":
      return `sqlite ${spec.options.filename}`
    case "postgres":
      return `postgres ${withoutCredentials(spec.options.url)} schema ${spec.options.schema}`
    case "mysql":
      return `mysql (MariaDB) ${withoutCredentials(spec.options.url)}`
    case "vault":
      return `vault ${spec.options.address} prefix ${spec.options.prefix}`
  }
}
