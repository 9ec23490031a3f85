import type { SqlMigrations } from "@token-broker/storage-sql"
import { Effect } from "effect"

/**
 * The SQLite schema, one forward step at a time. Never edit a released step: add a new one.
 *
 * Run by our own migrator (`SqlMigrations.runMigrations` of storage-sql, under `BEGIN IMMEDIATE`), not by
 * `SqliteMigrator` of @effect/sql-sqlite-node, because that one takes no lock on SQLite (read in
 * @effect/sql 0.52.1, `Migrator.js`: only PostgreSQL gets `LOCK TABLE`; SQLite runs in a plain deferred
 * `BEGIN`). Two processes starting on one file both read the old version; the second one's insert of the
 * version rows then fails, and it treats any such failure as "Migrations already running" (a debug log)
 * and carries on as migrated, possibly before the first one committed the tables it then uses. It also
 * turns a failed step into a defect and does not refuse a database newer than the code; ours fails with
 * `StorageUnavailable` in both cases.
 */
export const migrations: ReadonlyArray<SqlMigrations.Migration> = [
  {
    version: 1,
    name: "grants, pending authorizations, leases",
    up: (sql) =>
      Effect.all(
        [
          sql`CREATE TABLE grants (
            tenant TEXT NOT NULL COLLATE BINARY,
            subject TEXT NOT NULL COLLATE BINARY,
            provider TEXT NOT NULL COLLATE BINARY,
            version INTEGER NOT NULL,
            status TEXT NOT NULL,
            updated_at INTEGER NOT NULL,
            data TEXT NOT NULL,
            PRIMARY KEY (tenant, subject, provider)
          ) WITHOUT ROWID`,
          sql`CREATE TABLE pending_authorizations (
            state_hash TEXT PRIMARY KEY,
            expires_at INTEGER NOT NULL,
            data TEXT NOT NULL
          )`,
          sql`CREATE TABLE leases (
            name TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            expires_at INTEGER NOT NULL
          )`
        ],
        { discard: true }
      )
  },
  {
    version: 2,
    name: "indexes for list filters and pending expiry",
    up: (sql) =>
      Effect.all(
        [
          sql`CREATE INDEX grants_by_subject ON grants (subject, tenant, provider)`,
          sql`CREATE INDEX grants_by_provider ON grants (provider, tenant, subject)`,
          sql`CREATE INDEX grants_by_status ON grants (status, tenant, subject, provider)`,
          sql`CREATE INDEX pending_by_expiry ON pending_authorizations (expires_at)`
        ],
        { discard: true }
      )
  },
  {
    version: 3,
    name: "version high-water marks of deleted grants",
    // A deleted grant leaves its last version behind (a trigger, so every delete does), and a grant
    // inserted again starts above it: versions of a key never repeat, so a writer that read the old
    // grant can never compare-and-set onto the new one.
    up: (sql) =>
      Effect.all(
        [
          sql`CREATE TABLE grant_tombstones (
            tenant TEXT NOT NULL COLLATE BINARY,
            subject TEXT NOT NULL COLLATE BINARY,
            provider TEXT NOT NULL COLLATE BINARY,
            version INTEGER NOT NULL,
            PRIMARY KEY (tenant, subject, provider)
          ) WITHOUT ROWID`,
          sql`CREATE TRIGGER grants_keep_version AFTER DELETE ON grants
          BEGIN
            INSERT OR REPLACE INTO grant_tombstones (tenant, subject, provider, version)
            VALUES (OLD.tenant, OLD.subject, OLD.provider,
              MAX(OLD.version, COALESCE((SELECT version FROM grant_tombstones
                WHERE tenant = OLD.tenant AND subject = OLD.subject AND provider = OLD.provider), 0)));
          END`
        ],
        { discard: true }
      )
  }
]
