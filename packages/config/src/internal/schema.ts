import { PROVIDER_ID_PATTERN, providerSettingsProblem } from "@token-broker/core"
import { z } from "zod"
import { secretHashProblem } from "../CallerSecret.js"
import { brokerConnections, connectionsSchema } from "./connectionsSchema.js"
import { Duration } from "./duration.js"
import { McpServerSchema } from "./mcpServerSchema.js"

/**
 * The config file's zod schema: plain data only (no transforms), so that `z.toJSONSchema` publishes it
 * for editors. Secrets are never values in the file: they are references to an environment variable
 * or a file. Resolution (secrets, durations, defaults that depend on other fields) happens after parsing.
 */

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/

/** Where a secret comes from: an environment variable, or a file readable by the owner only (mode 0600). */
export const SecretRef = z
  .union(
    [
      z.strictObject({
        env: z.string().regex(ENV_NAME, { message: "name an environment variable, e.g. NOTES_CLIENT_SECRET" })
      }),
      z.strictObject({ file: z.string().min(1, { message: "give the path of the secret's file" }) })
    ],
    {
      message:
        "write a secret as { env: NAME } (an environment variable) or { file: path } (a file with mode 0600), never the secret itself"
    }
  )
  .describe("A secret: { env: NAME } reads an environment variable, { file: path } a file with mode 0600")

const KID = /^[A-Za-z0-9_-]{1,64}$/
const CALLER_ID = /^[A-Za-z0-9._:@-]{1,128}$/
const SCOPE = /^[\x21\x23-\x5B\x5D-\x7E]+$/
const PG_SCHEMA = /^[a-z_][a-z0-9_]{0,62}$/

const url = (what: string) => z.url({ message: `must be an absolute URL (${what})` })
const scope = z
  .string()
  .regex(SCOPE, { message: "a scope is one word of printable ASCII (no spaces or quotes)" })

const ProviderSchema = z
  .strictObject({
    id: z
      .string()
      .regex(PROVIDER_ID_PATTERN, { message: "use 1-64 characters of A-Z a-z 0-9 . _ -, e.g. nextcloud" })
      .describe("The provider's id in grants and requests"),
    issuer: url("the provider's issuer, e.g. https://cloud.example.com").describe(
      "Issuer; its metadata is at <issuer>/.well-known/openid-configuration (or oauth-authorization-server)"
    ),
    discovery: z
      .enum(["openid-configuration", "oauth-authorization-server", "none"], {
        message: "set discovery to openid-configuration, oauth-authorization-server or none"
      })
      .default("openid-configuration")
      .describe(
        "openid-configuration: OpenID Connect discovery, ID token expected; oauth-authorization-server: RFC 8414 metadata; none: only `endpoints`. The last two are plain OAuth 2.0: no openid scope, nonce or ID token"
      ),
    endpoints: z
      .strictObject({
        authorization: url("the authorization endpoint").optional(),
        token: url("the token endpoint").optional(),
        revocation: url("the RFC 7009 revocation endpoint").optional(),
        introspection: url("the RFC 7662 introspection endpoint").optional(),
        jwks: url("the JWKS").optional(),
        userinfo: url(
          "a userinfo-style endpoint (GET with the access token, JSON naming the account)"
        ).optional()
      })
      .optional()
      .describe(
        "Endpoints given here; each replaces the metadata's. With discovery none, authorization and token are required"
      ),
    authorizationParameters: z
      .record(z.string().min(1), z.string())
      .optional()
      .describe(
        "Extra authorization request parameters, e.g. { access_type: offline } (Google); names the broker sets itself are refused"
      ),
    offlineAccessScope: scope
      .nullable()
      .default("offline_access")
      .describe(
        "The scope that asks for a refresh token (sent with prompt=consent), or null when the provider issues refresh tokens without one"
      ),
    userinfoSubjectField: z
      .string()
      .min(1)
      .optional()
      .describe("The userinfo answer's field naming the account (default sub; GitHub: id)"),
    invalidGrantErrors: z
      .array(z.string().min(1))
      .optional()
      .describe(
        "Error codes the provider uses for a dead refresh token instead of invalid_grant (GitHub: bad_refresh_token)"
      ),
    clientId: z.string().min(1, { message: "set the client id the provider registered for the broker" }),
    clientAuthentication: z.discriminatedUnion(
      "method",
      [
        z.strictObject({
          method: z.literal("client_secret_basic"),
          clientSecret: SecretRef,
          encoding: z
            .enum(["form", "plain"], {
              message:
                'set encoding to "form" (RFC 6749: id and secret form-encoded before Base64) or "plain" (as they are)'
            })
            .default("form")
            .describe(
              "form: id and secret form-encoded before Base64 (RFC 6749 2.3.1); plain: as they are, for providers that do not decode them. token-broker doctor tells which one the provider accepts"
            )
        }),
        z.strictObject({ method: z.literal("client_secret_post"), clientSecret: SecretRef }),
        z.strictObject({
          method: z.literal("private_key_jwt"),
          privateJwk: SecretRef.describe("The private JWK (JSON text) client assertions are signed with")
        }),
        z.strictObject({ method: z.literal("none") })
      ],
      {
        message:
          "set method to client_secret_basic, client_secret_post, private_key_jwt or none (with clientSecret or privateJwk)"
      }
    ),
    redirectUri: url("the broker's /connect/callback as registered at the provider")
      .optional()
      .describe("Default: <server.publicUrl>/connect/callback"),
    scopes: z.array(scope).default([]).describe("Scopes asked at consent when a request names none"),
    resource: z.string().min(1).optional().describe("The upstream API's resource indicator (RFC 8707)"),
    internalBaseUrl: z
      .strictObject({ from: url("the public base URL"), to: url("the internal base URL") })
      .optional()
      .describe("Rewrite endpoints starting with `from` to `to` (the issuer itself is unchanged)"),
    allowInsecureRequests: z
      .boolean()
      .default(false)
      .describe("Allow http:// endpoints: local development and tests only"),
    requestTimeout: Duration.optional(),
    refreshTokenLifetime: Duration.optional().describe(
      "The refresh token's lifetime when the provider sends no refresh_expires_in"
    ),
    tokenExchange: z
      .strictObject({ actorToken: z.boolean().default(false) })
      .optional()
      .describe("Present: the provider does RFC 8693 token exchange for session tokens"),
    identityBinding: z
      .enum(["same-subject", "any"])
      .default("same-subject")
      .describe(
        "same-subject: the account that consented (the ID token's sub, or the userinfo field) must equal the subject; any: no check"
      )
  })
  .superRefine((provider, ctx) => {
    const problem = providerSettingsProblem(provider)
    if (problem !== undefined) {
      ctx.addIssue({ code: "custom", path: problem.field.split("."), message: problem.message })
    }
  })
  .describe("One upstream authorization server + API")

const CallerSchema = z
  .strictObject({
    id: z
      .string()
      .regex(CALLER_ID, { message: "use 1-128 characters of A-Z a-z 0-9 . _ : @ -" })
      .describe("The client id the caller authenticates with"),
    secretHash: z
      .string()
      .regex(/^scrypt\$/, {
        message:
          'store the secret hashed: run `pnpm --filter @token-broker/broker-app run hash-secret` and paste its "scrypt$..." output'
      })
      .superRefine((hash, ctx) => {
        if (!hash.startsWith("scrypt$")) return
        const problem = secretHashProblem(hash)
        if (problem !== undefined) {
          ctx.addIssue({
            code: "custom",
            message: `${problem}: hash the secret again with \`pnpm --filter @token-broker/broker-app run hash-secret\``
          })
        }
      })
      .describe("scrypt hash of the caller's secret (never the secret itself)"),
    tenant: z
      .string()
      .min(1)
      .max(256)
      .optional()
      .describe("The tenant this caller acts in (default: tenant)"),
    providers: z
      .array(z.string().min(1))
      .min(1, { message: 'list the providers this caller may use, or ["*"] for all' }),
    subjects: z
      .array(z.string().min(1))
      .min(1, { message: 'list the subjects this caller may act for ("prefix*" patterns), or ["*"]' }),
    scopes: z
      .array(z.string().min(1))
      .min(1, { message: 'list the scopes this caller may ask for, or ["*"]' }),
    backgroundTokens: z.boolean().default(false).describe("May get background tokens from stored grants"),
    tokenExchange: z.boolean().default(false).describe("May use RFC 8693 token exchange at /oauth/token"),
    subjectTokens: z
      .strictObject({
        clientIds: z
          .array(z.string().min(1))
          .default([])
          .describe('Clients (azp / client_id) whose users\' tokens it may exchange, or ["*"]'),
        audiences: z
          .array(z.string().min(1))
          .default([])
          .describe("Audiences of subject tokens it may exchange (e.g. an MCP server's <publicUrl>/mcp)")
      })
      .default({ clientIds: [], audiences: [] })
      .describe(
        "Which subject tokens this caller may exchange; by default only tokens issued to the caller itself"
      ),
    grants: z
      .enum(["none", "read", "manage"])
      .default("none")
      .describe("read: list and show grants; manage: also start consent and revoke")
  })
  .describe("A registered caller of the HTTP broker and its policy")

const IssuerSchema = z.strictObject({
  issuer: url("the issuer of the users' tokens"),
  jwksUri: url("the issuer's JWKS").optional(),
  introspection: z
    .union([
      z.strictObject({ provider: z.string().min(1).describe("Introspect with this provider's client") }),
      z.strictObject({
        endpoint: url("the introspection endpoint"),
        clientId: z.string().min(1),
        clientAuthentication: z.discriminatedUnion("method", [
          z.strictObject({ method: z.literal("client_secret_basic"), clientSecret: SecretRef }),
          z.strictObject({ method: z.literal("client_secret_post"), clientSecret: SecretRef })
        ])
      })
    ])
    .optional()
})

const LocalKeySchema = z.union([
  z.strictObject({
    kid: z.string().regex(KID, { message: "use 1-64 characters of A-Z a-z 0-9 _ -" }),
    env: z.string().regex(ENV_NAME)
  }),
  z.strictObject({
    kid: z.string().regex(KID, { message: "use 1-64 characters of A-Z a-z 0-9 _ -" }),
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

export const ConfigFileSchema = z
  .strictObject({
    $schema: z.string().optional(),
    tenant: z.string().min(1).max(256).default("default").describe("The tenant of requests that name none"),
    server: z
      .strictObject({
        host: z.string().min(1).default("127.0.0.1"),
        port: z.number().int().min(0).max(65_535).default(8080),
        publicUrl: url("where users and callers reach the broker, e.g. https://broker.example.com")
          .optional()
          .describe("Default: http://<host>:<port>"),
        trustProxy: z
          .union([z.boolean(), z.string().min(1), z.number().int().min(1)])
          .default(false)
          .describe("fastify's trustProxy: true, hop count, or addresses/CIDRs of the load balancer"),
        bodyLimit: z.number().int().min(1024).max(10_485_760).default(65_536),
        logLevel: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
        rateLimit: z
          .strictObject({
            max: z.number().int().min(1).default(600).describe("Requests per caller per window"),
            timeWindow: Duration.default("1 minute")
          })
          .default({ max: 600, timeWindow: "1 minute" }),
        shutdownTimeout: Duration.default("10 seconds").describe(
          "How long in-flight requests may take to finish on shutdown"
        ),
        returnToOrigins: z
          .array(url("an origin such as https://app.example.com"))
          .default([])
          .describe("Origins a consent's returnTo may point to"),
        callerAuthentication: z
          .strictObject({
            maxFailures: z
              .number()
              .int()
              .min(1)
              .default(10)
              .describe(
                "Failed authentications per client address per failureWindow; beyond: 429 before scrypt"
              ),
            failureWindow: Duration.default("1 minute"),
            maxConcurrent: z
              .number()
              .int()
              .min(1)
              .default(4)
              .describe("scrypt verifications at once (each takes tens of milliseconds of CPU)"),
            maxQueued: z
              .number()
              .int()
              .min(0)
              .default(64)
              .describe("Verifications waiting for one of maxConcurrent; beyond: 429")
          })
          .default({ maxFailures: 10, failureWindow: "1 minute", maxConcurrent: 4, maxQueued: 64 })
          .describe("Abuse limits of caller authentication (a verified caller is remembered and skips them)"),
        connections: connectionsSchema(brokerConnections),
        metrics: z
          .strictObject({
            token: SecretRef.optional().describe(
              "A bearer token /metrics requires (Authorization: Bearer ...); absent: /metrics is open"
            )
          })
          .default({})
          .describe("Access to the Prometheus metrics")
      })
      .default({
        host: "127.0.0.1",
        port: 8080,
        trustProxy: false,
        bodyLimit: 65_536,
        logLevel: "info",
        rateLimit: { max: 600, timeWindow: "1 minute" },
        shutdownTimeout: "10 seconds",
        returnToOrigins: [],
        callerAuthentication: { maxFailures: 10, failureWindow: "1 minute", maxConcurrent: 4, maxQueued: 64 },
        connections: { ...brokerConnections },
        metrics: {}
      }),
    storage: StorageSchema,
    keyRing: KeyRingSchema,
    providers: z.array(ProviderSchema).min(1, { message: "configure at least one provider" }),
    sessionTokens: z
      .strictObject({
        audience: z
          .union([z.string().min(1), z.array(z.string().min(1)).min(1)])
          .describe("The audiences users' tokens must carry to be exchanged (this broker / MCP server)"),
        issuers: z.array(IssuerSchema).min(1, { message: "name the issuer of the users' tokens" }),
        allowInsecureRequests: z.boolean().default(false),
        clockTolerance: Duration.optional(),
        introspectionCacheTtl: Duration.optional(),
        verifiedTokenCacheTtl: Duration.optional().describe(
          "How long a JWT that verified is answered again without checking its signature (never past its exp; default 30 seconds; 0 verifies every time)"
        )
      })
      .optional()
      .describe("Verification of users' own tokens (Flow 1) for token exchange"),
    callers: z.array(CallerSchema).default([]),
    broker: z
      .strictObject({
        earlyRefresh: Duration.optional(),
        leaseTtl: Duration.optional(),
        leaseWait: Duration.optional(),
        retryAttempts: z.number().int().min(1).max(20).optional(),
        retryBaseDelay: Duration.optional(),
        retryDeadline: Duration.optional(),
        circuitFailureThreshold: z.number().int().min(1).optional(),
        circuitOpenFor: Duration.optional(),
        maxConcurrentRefreshes: z.number().int().min(1).optional(),
        pendingTtl: Duration.optional(),
        cacheMaxEntries: z.number().int().min(1).optional()
      })
      .default({})
      .describe("Tuning of the refresh protocol; the defaults suit most deployments"),
    tokenSource: z
      .discriminatedUnion("kind", [
        z.strictObject({ kind: z.literal("in-process") }),
        z.strictObject({
          kind: z.literal("remote"),
          url: url("the remote broker's base URL"),
          clientId: z.string().min(1),
          clientSecret: SecretRef,
          timeout: Duration.optional(),
          allowInsecureRequests: z.boolean().default(false)
        })
      ])
      .default({ kind: "in-process" })
      .describe("Where apps such as the MCP server get tokens: this process's broker, or a remote one"),
    mcpServer: McpServerSchema.optional()
  })
  .describe("token-broker configuration")

export type ConfigFile = z.output<typeof ConfigFileSchema>
export type ConfigFileInput = z.input<typeof ConfigFileSchema>
export type SecretRefInput = z.output<typeof SecretRef>
