import type { ConfigInvalid, StorageUnavailable } from "@token-broker/core"
import { Effect } from "effect"
import type { StorageConfig } from "./Config.js"
import { loadAdapter } from "./internal/adapters.js"

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
 * The backend's adapter package is imported here; when it is not installed, this fails with `ConfigInvalid`.
 */
export const migrateStorage = (
  storage: StorageConfig
): Effect.Effect<StorageMigration, StorageUnavailable | ConfigInvalid> => {
  switch (storage.kind) {
    case "sqlite":
      return loadAdapter("@token-broker/storage-sqlite", "storage.kind", "sqlite").pipe(
        Effect.flatMap(({ SqliteGrantStore }) =>
          SqliteGrantStore.migrate({ filename: storage.filename, busyTimeout: storage.busyTimeout })
        ),
        Effect.map((result) => ({ backend: "sqlite" as const, ...result }))
      )
    case "postgres":
      return loadAdapter("@token-broker/storage-postgres", "storage.kind", "postgres").pipe(
        Effect.flatMap(({ PgGrantStore }) =>
          PgGrantStore.migrate({
            url: storage.url,
            schema: storage.schema,
            statementTimeout: storage.statementTimeout,
            connectTimeout: storage.connectTimeout,
            applicationName: storage.applicationName
          })
        ),
        Effect.map((result) => ({ backend: "postgres" as const, ...result }))
      )
    case "mysql":
      return loadAdapter("@token-broker/storage-mysql", "storage.kind", "mysql").pipe(
        Effect.flatMap(({ MysqlGrantStore }) =>
          MysqlGrantStore.migrate({
            url: storage.url,
            statementTimeout: storage.statementTimeout,
            connectTimeout: storage.connectTimeout
          })
        ),
        Effect.map((result) => ({ backend: "mysql" as const, ...result }))
      )
    case "vault":
    case "memory":
      return Effect.succeed({ backend: storage.kind })
  }
}
