import { z } from "zod"
import { Duration } from "./duration.js"
import { ENV_NAME, KID, kid, PG_SCHEMA, SecretRef, url } from "./fieldSchemas.js"

// Where grants live (`storage`) and where the keys that encrypt them come from (`keyRing`).

const LocalKeySchema = z.union([
  z.strictObject({
    kid,
    env: z.string().regex(ENV_NAME)
  }),
  z.strictObject({
    kid,
    file: z.string().min(1)
  })
])

const VaultConnectionSchema = z.strictObject({
  address: url("the Vault server, e.g. https://vault.example.com:8200 (no /v1)"),
  auth: z.union(
    [
      z.strictObject({ token: SecretRef }),
      z.strictObject({
        appRole: z.strictObject({
          roleId: z.string().min(1),
          secretId: SecretRef,
          mount: z.string().min(1).optional()
        })
      })
    ],
    {
      message:
        "set auth to { token: { env: VAULT_TOKEN } } or { appRole: { roleId, secretId: { env: ... } } }"
    }
  ),
  namespace: z.string().min(1).optional(),
  caCertFile: z.string().min(1).optional().describe("PEM file of the CA that signed Vault's certificate"),
  timeout: Duration.optional(),
  retries: z.number().int().min(0).max(10).optional(),
  allowInsecureRequests: z
    .boolean()
    .default(false)
    .describe("Allow an http:// address (local development only)")
})

export const StorageSchema = z.discriminatedUnion(
  "kind",
  [
    z
      .strictObject({ kind: z.literal("memory") })
      .describe("In memory: nothing survives a restart. Tests and trials only"),
    z
      .strictObject({
        kind: z.literal("sqlite"),
        filename: z
          .string()
          .min(1, { message: "give the database file, e.g. /var/lib/token-broker/grants.db" }),
        migrate: z.boolean().default(true),
        busyTimeout: Duration.optional()
      })
      .describe("A SQLite file: one machine"),
    z
      .strictObject({
        kind: z.literal("postgres"),
        url: SecretRef.describe("postgres://user:password@host:5432/db, e.g. { env: DATABASE_URL }"),
        schema: z
          .string()
          .regex(PG_SCHEMA, { message: "use lower-case letters, digits and _" })
          .default("token_broker"),
        poolSize: z.number().int().min(1).max(1000).optional(),
        statementTimeout: Duration.optional(),
        connectTimeout: Duration.optional(),
        migrate: z.boolean().default(true),
        applicationName: z.string().min(1).optional()
      })
      .describe("PostgreSQL: several replicas"),
    z
      .strictObject({
        kind: z.literal("mysql"),
        url: SecretRef.describe(
          "mysql://user:password@host:3306/database (MariaDB 10.11), e.g. { env: MARIADB_URL }; ?socketPath=/run/mysqld/mysqld.sock for a Unix socket"
        ),
        poolSize: z.number().int().min(1).max(1000).optional(),
        statementTimeout: Duration.optional(),
        connectTimeout: Duration.optional(),
        migrate: z.boolean().default(true)
      })
      .describe("MariaDB: several replicas"),
    z
      .strictObject({
        kind: z.literal("vault"),
        ...VaultConnectionSchema.shape,
        mount: z.string().min(1).default("secret").describe("The KV v2 mount"),
        prefix: z.string().min(1).default("token-broker").describe("Path prefix inside the mount"),
        leaseClockMargin: Duration.optional()
      })
      .describe("HashiCorp Vault / OpenBao KV v2")
  ],
  { message: "set storage.kind to sqlite, postgres, mysql, vault or memory" }
)

export const KeyRingSchema = z.discriminatedUnion(
  "kind",
  [
    z.strictObject({
      kind: z.literal("local"),
      keys: z.array(LocalKeySchema).min(1, {
        message: "add at least one key: { kid: k1, env: TOKEN_BROKER_KEY } (32 random bytes, base64)"
      }),
      current: z
        .string()
        .regex(KID)
        .optional()
        .describe("The kid new data is encrypted under (default: the last key)")
    }),
    z.strictObject({
      kind: z.literal("vault-transit"),
      ...VaultConnectionSchema.shape,
      mount: z.string().min(1).default("transit"),
      key: z.string().min(1).default("token-broker").describe("The Transit key name (a derived key)")
    })
  ],
  { message: "set keyRing.kind to local or vault-transit" }
)
