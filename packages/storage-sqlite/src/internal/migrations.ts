import { type SqlMigrations, SqlSchema } from "@token-broker/storage-sql"

/**
 * The SQLite schema, one forward step at a time. Never edit a released step: add a new one. A deleted
 * grant leaves its last version behind (a trigger, so every delete does), and a grant inserted again
 * starts above it: versions of a key never repeat, so a writer that read the old grant can never
 * compare-and-set onto the new one.
 */
export const migrations: ReadonlyArray<SqlMigrations.Migration> = SqlSchema.migrations(
  {
    key: "TEXT NOT NULL COLLATE BINARY",
    text: "TEXT",
    integer: "INTEGER",
    millis: "INTEGER",
    keyedTableOptions: "WITHOUT ROWID"
  },
  [
    `CREATE TRIGGER grants_keep_version AFTER DELETE ON grants
    BEGIN
      INSERT OR REPLACE INTO grant_tombstones (tenant, subject, provider, version)
      VALUES (OLD.tenant, OLD.subject, OLD.provider,
        MAX(OLD.version, COALESCE((SELECT version FROM grant_tombstones
          WHERE tenant = OLD.tenant AND subject = OLD.subject AND provider = OLD.provider), 0)));
    END`
  ]
)
