import type { ConfigInvalid, StorageUnavailable } from "@token-broker/core"
import { MysqlGrantStore } from "@token-broker/storage-mysql"
import { PgGrantStore } from "@token-broker/storage-postgres"
import { SqliteGrantStore } from "@token-broker/storage-sqlite"
import { Effect } from "effect"
import type { StorageConfig } from "./Config.js"

/** What `migrateStorage` did. */
export type StorageMigration =
  | {
      readonly backend: "sqlite" | "postgres" | "mysql"
      /** The schema version before and after. */
      readonly from: number
      readonly to: number
      /** Versions applied by this call, in order (empty when the schema was already current). */
      readonly applied: ReadonlyArray<number>
    }
  | {
      /** Stores without a schema: nothing to migrate. */
      readonly backend: "vault" | "memory"
    }

/**
 * Applies the pending storage migrations of the configured backend (SQLite, PostgreSQL, MariaDB); a no-op on a
 * current schema and on backends without one (Vault, memory). Safe to run from several processes at once.
 */
export const migrateStorage = (
  storage: StorageConfig
): Effect.Effect<StorageMigration, StorageUnavailable | ConfigInvalid> => {
  switch (storage.kind) {
    case "sqlite":
      return Effect.map(
        SqliteGrantStore.migrate({ filename: storage.filename, busyTimeout: storage.busyTimeout }),
        (result) => ({ backend: "sqlite" as const, ...result })
      )
    case "postgres":
      return Effect.map(
        PgGrantStore.migrate({
          url: storage.url,
          schema: storage.schema,
          statementTimeout: storage.statementTimeout,
          connectTimeout: storage.connectTimeout,
          applicationName: storage.applicationName
        }),
        (result) => ({ backend: "postgres" as const, ...result })
      )
    case "mysql":
      return Effect.map(
        MysqlGrantStore.migrate({
          url: storage.url,
          statementTimeout: storage.statementTimeout,
          connectTimeout: storage.connectTimeout
        }),
        (result) => ({ backend: "mysql" as const, ...result })
      )
    case "vault":
    case "memory":
      return Effect.succeed({ backend: storage.kind })
  }
}
