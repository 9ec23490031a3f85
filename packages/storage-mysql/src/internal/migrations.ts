import { SqlMigrations, SqlSchema } from "@token-broker/storage-sql"

// Keys: utf8mb4_nopad_bin, byte (code point) order as `list` in the other stores, and NO PAD ("alice " is
// not "alice", as utf8mb4_bin would have it); up to 255 characters a part (the 3072-byte key limit).
const key = "VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NOT NULL"
const table = "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_nopad_bin"
const ddl = SqlMigrations.statements

/**
 * The MariaDB schema, one forward step at a time. Never edit a released step: add a new one. MariaDB
 * commits each DDL statement at once (no transactional DDL), so every statement is idempotent (`IF NOT
 * EXISTS`): a step cut short by a crash runs again whole.
 */
export const migrations: ReadonlyArray<SqlMigrations.Migration> = [
  {
    version: 1,
    name: SqlSchema.stepNames[1],
    up: ddl(
      `CREATE TABLE IF NOT EXISTS grants (tenant ${key}, subject ${key}, provider ${key},
        version INT NOT NULL, status VARCHAR(32) NOT NULL, updated_at BIGINT NOT NULL, data MEDIUMTEXT NOT NULL,
        PRIMARY KEY (tenant, subject, provider)) ${table}`,
      `CREATE TABLE IF NOT EXISTS pending_authorizations (state_hash ${key} PRIMARY KEY,
        expires_at BIGINT NOT NULL, data MEDIUMTEXT NOT NULL) ${table}`,
      `CREATE TABLE IF NOT EXISTS leases (name ${key.replace("255", "768")} PRIMARY KEY,
        owner VARCHAR(255) NOT NULL, expires_at BIGINT NOT NULL) ${table}`
    )
  },
  {
    version: 2,
    name: SqlSchema.stepNames[2],
    // an InnoDB secondary index ends with the primary key's columns: (subject) orders as (subject,
    // tenant, provider), within the key-length limit that the explicit form would exceed
    up: ddl(
      "CREATE INDEX IF NOT EXISTS grants_by_subject ON grants (subject)",
      "CREATE INDEX IF NOT EXISTS grants_by_provider ON grants (provider)",
      "CREATE INDEX IF NOT EXISTS grants_by_status ON grants (status)",
      "CREATE INDEX IF NOT EXISTS pending_by_expiry ON pending_authorizations (expires_at)"
    )
  },
  {
    version: 3,
    name: SqlSchema.stepNames[3],
    // a deleted grant leaves its last version behind (a trigger, so every delete does), and a grant
    // inserted again starts above it: versions of a key never repeat
    up: ddl(
      `CREATE TABLE IF NOT EXISTS grant_tombstones (tenant ${key}, subject ${key}, provider ${key},
        version INT NOT NULL, PRIMARY KEY (tenant, subject, provider)) ${table}`,
      `CREATE TRIGGER IF NOT EXISTS grants_keep_version AFTER DELETE ON grants FOR EACH ROW
        INSERT INTO grant_tombstones (tenant, subject, provider, version)
        VALUES (OLD.tenant, OLD.subject, OLD.provider, OLD.version)
        ON DUPLICATE KEY UPDATE version = GREATEST(grant_tombstones.version, VALUES(version))`
    )
  }
]
