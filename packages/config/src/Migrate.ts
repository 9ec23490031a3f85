import type { ConfigInvalid, StorageUnavailable } from "@token-broker/core"
import { Effect } from "effect"
import type { StorageConfig } from "./Config.js"
import { sqlStore } from "./internal/adapters.js"

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
    case "postgres":
    case "mysql":
      return sqlStore(storage).pipe(
        Effect.flatMap((store) => store.migrate),
        Effect.map((result) => ({ backend: storage.kind, ...result }))
      )
    case "vault":
    case "memory":
      return Effect.succeed({ backend: storage.kind })
  }
}
