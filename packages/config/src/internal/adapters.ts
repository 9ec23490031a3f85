import { ConfigInvalid, type GrantStore, type StorageUnavailable } from "@token-broker/core"
import { Context, Effect, Layer } from "effect"
import type { StorageConfig } from "../Config.js"

/**
 * The storage adapters are optional peer dependencies: a team installs the one its config names, so a
 * SQLite deployment never installs `pg` and a PostgreSQL one never compiles `better-sqlite3`. They are
 * loaded here, on demand, and never imported statically anywhere else in this package (a test reads
 * dist/ to hold that). Each import is a literal so that bundlers (the CLI's esbuild) still find them.
 */
const imports = {
  "@token-broker/storage-sqlite": () => import("@token-broker/storage-sqlite"),
  "@token-broker/storage-postgres": () => import("@token-broker/storage-postgres"),
  "@token-broker/storage-mysql": () => import("@token-broker/storage-mysql"),
  "@token-broker/storage-vault": () => import("@token-broker/storage-vault")
}

export type AdapterPackage = keyof typeof imports

type Modules = { readonly [P in AdapterPackage]: Awaited<ReturnType<(typeof imports)[P]>> }

/** How an adapter package is imported; replaced in tests to play a team that did not install one. */
export class AdapterImport extends Context.Reference<AdapterImport>()("@token-broker/config/AdapterImport", {
  defaultValue:
    () =>
    (name: AdapterPackage): Promise<unknown> =>
      imports[name]()
}) {}

/** The module failed to resolve because the package itself is not installed (not one of its dependencies). */
const isMissing = (error: unknown, name: AdapterPackage): boolean => {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown }
  const notFound = code === "ERR_MODULE_NOT_FOUND" || code === "MODULE_NOT_FOUND"
  return notFound && typeof message === "string" && message.includes(name)
}

/**
 * Imports the adapter package `field` (`storage.kind` or `keyRing.kind`) asks for. A package that is not
 * installed fails with `ConfigInvalid` naming it and the command that installs it; a package that is
 * installed but does not load (a missing native build, a broken dependency) says so with the reason.
 */
export const loadAdapter = <P extends AdapterPackage>(
  name: P,
  field: string,
  kind: string
): Effect.Effect<Modules[P], ConfigInvalid> =>
  Effect.flatMap(AdapterImport, (importAdapter) =>
    Effect.tryPromise({
      try: () => importAdapter(name) as Promise<Modules[P]>,
      catch: (error) =>
        new ConfigInvalid({
          field,
          message: isMissing(error, name)
            ? `${field} ${kind} needs the package ${name}, which is not installed: add it to your dependencies (npm install ${name})`
            : `${field} ${kind}: ${name} is installed but does not load: ${error instanceof Error ? error.message : String(error)}`
        })
    })
  )

/** The layer `build` makes of the adapter package `name`, which is imported when the layer is built. */
export const adapterLayer = <P extends AdapterPackage, A, E>(
  name: P,
  field: string,
  kind: string,
  build: (module: Modules[P]) => Layer.Layer<A, E>
): Layer.Layer<A, E | ConfigInvalid> => Layer.unwrapEffect(Effect.map(loadAdapter(name, field, kind), build))

export type SqlStorageConfig = Extract<StorageConfig, { readonly kind: "sqlite" | "postgres" | "mysql" }>

/** A SQL store on the configured settings: its GrantStore layer, and its migration. */
export interface SqlStore {
  readonly layer: Layer.Layer<GrantStore.GrantStore, StorageUnavailable | ConfigInvalid>
  readonly migrate: Effect.Effect<
    { readonly from: number; readonly to: number; readonly applied: ReadonlyArray<number> },
    StorageUnavailable | ConfigInvalid
  >
}

/** Imports the adapter package of `storage.kind` (as `loadAdapter` does) and applies it to `storage`. */
export const sqlStore = (storage: SqlStorageConfig): Effect.Effect<SqlStore, ConfigInvalid> => {
  switch (storage.kind) {
    case "sqlite":
      return Effect.map(
        loadAdapter("@token-broker/storage-sqlite", "storage.kind", "sqlite"),
        ({ SqliteGrantStore: store }) => ({ layer: store.layer(storage), migrate: store.migrate(storage) })
      )
    case "postgres":
      return Effect.map(
        loadAdapter("@token-broker/storage-postgres", "storage.kind", "postgres"),
        ({ PgGrantStore: store }) => ({ layer: store.layer(storage), migrate: store.migrate(storage) })
      )
    case "mysql":
      return Effect.map(
        loadAdapter("@token-broker/storage-mysql", "storage.kind", "mysql"),
        ({ MysqlGrantStore: store }) => ({ layer: store.layer(storage), migrate: store.migrate(storage) })
      )
  }
}
