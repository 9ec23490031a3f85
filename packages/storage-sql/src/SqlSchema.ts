import { type Migration, statements } from "./SqlMigrations.js"

/**
 * The tables the driver reads and writes (see `SqlGrantStore.makeDriver`), written once in a backend's
 * column types for the adapters' migrations: every backend gets the same columns. The DDL here is part
 * of released migration steps, so it never changes: a new column or index is a new step of its own.
 */

/** How a backend spells the column types of the driver's tables. */
export interface ColumnTypes {
  /** A part of a grant's key (tenant, subject, provider), NOT NULL, ordered by code unit as `list` is. */
  readonly key: string
  /** Free text (`status`, `data`, names). */
  readonly text: string
  /** A grant's `version`. */
  readonly integer: string
  /** Epoch milliseconds. */
  readonly millis: string
  /** After a table whose primary key is a grant's key (SQLite: `WITHOUT ROWID`); default none. */
  readonly keyedTableOptions?: string | undefined
}

/** The CREATE TABLE statements of the driver's tables, in `types`. */
export const tables = (types: ColumnTypes) => {
  const keyed = types.keyedTableOptions === undefined ? "" : ` ${types.keyedTableOptions}`
  const keyAndVersion = `tenant ${types.key},
    subject ${types.key},
    provider ${types.key},
    version ${types.integer} NOT NULL,`
  return {
    grants: `CREATE TABLE grants (
    ${keyAndVersion}
    status ${types.text} NOT NULL,
    updated_at ${types.millis} NOT NULL,
    data ${types.text} NOT NULL,
    PRIMARY KEY (tenant, subject, provider)
  )${keyed}`,
    pendingAuthorizations: `CREATE TABLE pending_authorizations (
    state_hash ${types.text} PRIMARY KEY,
    expires_at ${types.millis} NOT NULL,
    data ${types.text} NOT NULL
  )`,
    leases: `CREATE TABLE leases (
    name ${types.text} PRIMARY KEY,
    owner ${types.text} NOT NULL,
    expires_at ${types.millis} NOT NULL
  )`,
    /** The last version of each deleted grant (written by a backend's delete trigger). */
    grantTombstones: `CREATE TABLE grant_tombstones (
    ${keyAndVersion}
    PRIMARY KEY (tenant, subject, provider)
  )${keyed}`
  }
}

/**
 * The indexes of `list`'s filters and of the sweep of expired pending authorizations, for a backend whose
 * secondary index does not end with the primary key on its own (MariaDB's InnoDB does: it has its own).
 */
export const listIndexes: ReadonlyArray<string> = [
  "CREATE INDEX grants_by_subject ON grants (subject, tenant, provider)",
  "CREATE INDEX grants_by_provider ON grants (provider, tenant, subject)",
  "CREATE INDEX grants_by_status ON grants (status, tenant, subject, provider)",
  "CREATE INDEX pending_by_expiry ON pending_authorizations (expires_at)"
]

/** The names of the schema's steps, the same in every backend's `schema_migrations`. */
export const stepNames = {
  1: "grants, pending authorizations, leases",
  2: "indexes for list filters and pending expiry",
  3: "version high-water marks of deleted grants"
} as const

/**
 * Steps 1 to 3 of a backend whose SQL has plain `CREATE TABLE` and `CREATE INDEX` (SQLite, PostgreSQL):
 * the tables in `types`, the list indexes, and the tombstones with the backend's own delete trigger
 * (`deleteTrigger`: the statements that create it), which writes a deleted grant's last version there.
 */
export const migrations = (
  types: ColumnTypes,
  deleteTrigger: ReadonlyArray<string>
): ReadonlyArray<Migration> => {
  const created = tables(types)
  return [
    {
      version: 1,
      name: stepNames[1],
      up: statements(created.grants, created.pendingAuthorizations, created.leases)
    },
    { version: 2, name: stepNames[2], up: statements(...listIndexes) },
    { version: 3, name: stepNames[3], up: statements(created.grantTombstones, ...deleteTrigger) }
  ]
}
