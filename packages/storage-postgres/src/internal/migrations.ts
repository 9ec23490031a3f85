import { type SqlMigrations, SqlSchema } from "@token-broker/storage-sql"

/**
 * The PostgreSQL schema, one forward step at a time. Never edit a released step: add a new one. Key
 * columns use `COLLATE "C"` so that the primary key orders rows in code-unit order, the order of `list`.
 * A deleted grant leaves its last version behind (a trigger, so every delete does), and a grant inserted
 * again starts above it: versions of a key never repeat, so a writer that read the old grant can never
 * compare-and-set onto the new one. The trigger's function keeps the schema it was created in.
 */
export const migrations: ReadonlyArray<SqlMigrations.Migration> = SqlSchema.migrations(
  { key: 'text COLLATE "C" NOT NULL', text: "text", integer: "integer", millis: "bigint" },
  [
    `CREATE FUNCTION grants_keep_version() RETURNS trigger
      LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
      BEGIN
        INSERT INTO grant_tombstones (tenant, subject, provider, version)
        VALUES (OLD.tenant, OLD.subject, OLD.provider, OLD.version)
        ON CONFLICT (tenant, subject, provider)
        DO UPDATE SET version = GREATEST(grant_tombstones.version, excluded.version);
        RETURN OLD;
      END
    $$`,
    `CREATE TRIGGER grants_keep_version AFTER DELETE ON grants
      FOR EACH ROW EXECUTE FUNCTION grants_keep_version()`
  ]
)
