import { randomBytes } from "node:crypto"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { startVaultEmulator } from "@token-broker/storage-vault/testing"
import { Effect } from "effect"
import { migrateStore, type StoreKind, type StoreSpec, withoutCredentials } from "../../src/StoreSpec.js"
import { dropSchema, withSql } from "../../src/StoreSql.js"

/** The PostgreSQL the tests use: `DATABASE_URL`, else the machine's server (trust auth, database `test`). */
export const databaseUrl = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test"

/** The MariaDB the tests use: `MARIADB_URL`, else the machine's server (root, empty password). */
export const mariadbUrl = process.env.MARIADB_URL ?? "mysql://root@127.0.0.1:3306/test"

/** The backends every reliability test runs on. */
export const SQL_BACKENDS: ReadonlyArray<StoreKind> = ["sqlite", "postgres", "mysql"]

/** The backends of tests that use the store through its GrantStore interface only. */
export const ALL_BACKENDS: ReadonlyArray<StoreKind> = [...SQL_BACKENDS, "vault"]

export interface Backend {
  readonly spec: StoreSpec
  /** Deletes the file or drops the schema. */
  readonly cleanup: () => Promise<void>
}

/**
 * A fresh, migrated store: SQLite in a new temp folder, a new PostgreSQL schema or MariaDB database
 * (`tb_bench_<random>`), or a Vault emulator. When a database server does not answer this rejects with a message saying so: the tests fail, never skip.
 */
export const prepareBackend = async (kind: StoreKind): Promise<Backend> => {
  switch (kind) {
    case "sqlite": {
      const dir = mkdtempSync(join(tmpdir(), "tb-bench-"))
      const spec: StoreSpec = { kind, options: { filename: join(dir, "grants.db") } }
      await Effect.runPromise(migrateStore(spec))
      return { spec, cleanup: async () => rmSync(dir, { recursive: true, force: true }) }
    }
    case "postgres": {
      const spec: StoreSpec = {
        kind,
        options: {
          url: databaseUrl,
          schema: `tb_bench_${randomBytes(6).toString("hex")}`,
          poolSize: 4,
          connectTimeout: "5 seconds"
        }
      }
      try {
        await Effect.runPromise(migrateStore(spec))
      } catch (cause) {
        throw new Error(
          `PostgreSQL does not answer at ${withoutCredentials(databaseUrl)} (set DATABASE_URL, or start the ` +
            `server: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start): ${String(cause)}`
        )
      }
      return { spec, cleanup: () => withSql(spec, dropSchema(spec)) }
    }
    case "mysql": {
      const url = new URL(mariadbUrl)
      url.pathname = `/tb_bench_${randomBytes(6).toString("hex")}`
      const spec: StoreSpec = { kind, options: { url: url.href, poolSize: 4, connectTimeout: "5 seconds" } }
      try {
        await Effect.runPromise(migrateStore(spec))
      } catch (cause) {
        throw new Error(
          `MariaDB does not answer at ${withoutCredentials(mariadbUrl)} (set MARIADB_URL, or start the server: ` +
            `start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd): ${String(cause)}`
        )
      }
      return { spec, cleanup: () => withSql(spec, dropSchema(spec)) }
    }
    case "vault": {
      // Vault cannot run on this machine: the repository's emulator of Vault's HTTP API, over real HTTP.
      const vault = await startVaultEmulator()
      const spec: StoreSpec = {
        kind,
        options: {
          address: vault.address,
          auth: { token: vault.rootToken },
          prefix: `tb-bench-${randomBytes(6).toString("hex")}`
        }
      }
      return { spec, cleanup: () => vault.close() }
    }
  }
}
