import type { SqlMigrations } from "@token-broker/storage-sql"
import { Effect } from "effect"

/**
 * The PostgreSQL schema, one forward step at a time. Never edit a released step: add a new one. Key
 * columns use `COLLATE "C"` so that the primary key orders rows in code-unit order, the order of `list`.
 */
export const migrations: ReadonlyArray<SqlMigrations.Migration> = [
  {
    version: 1,
    name: "grants, pending authorizations, leases",
    up: (sql) =>
      Effect.all(
        [
          sql`CREATE TABLE grants (
            tenant text COLLATE "C" NOT NULL,
            subject text COLLATE "C" NOT NULL,
            provider text COLLATE "C" NOT NULL,
            version integer NOT NULL,
            status text NOT NULL,
            updated_at bigint NOT NULL,
            data text NOT NULL,
            PRIMARY KEY (tenant, subject, provider)
          )`,
          sql`CREATE TABLE pending_authorizations (
            state_hash text PRIMARY KEY,
            expires_at bigint NOT NULL,
            data text NOT NULL
          )`,
          sql`CREATE TABLE leases (
            name text PRIMARY KEY,
            owner text NOT NULL,
            expires_at bigint NOT NULL
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
    // grant can never compare-and-set onto the new one. The function keeps the schema it was created in.
    up: (sql) =>
      Effect.all(
        [
          sql`CREATE TABLE grant_tombstones (
            tenant text COLLATE "C" NOT NULL,
            subject text COLLATE "C" NOT NULL,
            provider text COLLATE "C" NOT NULL,
            version integer NOT NULL,
            PRIMARY KEY (tenant, subject, provider)
          )`,
          sql.unsafe(`CREATE FUNCTION grants_keep_version() RETURNS trigger
            LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
            BEGIN
              INSERT INTO grant_tombstones (tenant, subject, provider, version)
              VALUES (OLD.tenant, OLD.subject, OLD.provider, OLD.version)
              ON CONFLICT (tenant, subject, provider)
              DO UPDATE SET version = GREATEST(grant_tombstones.version, excluded.version);
              RETURN OLD;
            END
          $$`),
          sql`CREATE TRIGGER grants_keep_version AFTER DELETE ON grants
            FOR EACH ROW EXECUTE FUNCTION grants_keep_version()`
        ],
        { discard: true }
      )
  }
]
