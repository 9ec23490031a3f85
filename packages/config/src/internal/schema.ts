import { z } from "zod"
import { CallerSchema } from "./callerSchema.js"
import { brokerConnections, connectionsSchema } from "./connectionsSchema.js"
import { Duration } from "./duration.js"
import { listenerFields, logLevel, SecretRef, trustProxy, url } from "./fieldSchemas.js"
import { McpServerSchema } from "./mcpServerSchema.js"
import { ProviderSchema } from "./providerSchema.js"
import { KeyRingSchema, StorageSchema } from "./storageSchema.js"

/**
 * The config file's zod schema: plain data only (no transforms), so that `z.toJSONSchema` publishes it
 * for editors. Secrets are never values in the file: they are references to an environment variable
 * or a file. Resolution (secrets, durations, defaults that depend on other fields) happens after parsing.
 */

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

export const ConfigFileSchema = z
  .strictObject({
    $schema: z.string().optional(),
    tenant: z.string().min(1).max(256).default("default").describe("The tenant of requests that name none"),
    server: z
      .strictObject({
        ...listenerFields(
          8080,
          "where users and callers reach the broker, e.g. https://broker.example.com",
          "Default: http://<host>:<port>"
        ),
        trustProxy: trustProxy.describe(
          "fastify's trustProxy: true, hop count, or addresses/CIDRs of the load balancer"
        ),
        bodyLimit: z.number().int().min(1024).max(10_485_760).default(65_536),
        logLevel,
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
          allowInsecureRequests: z.boolean().default(false),
          cacheTokens: z
            .boolean()
            .default(true)
            .describe(
              "Keep background tokens in this process for the first half of the life they had left (false: every call asks the broker)"
            )
        })
      ])
      .default({ kind: "in-process" })
      .describe("Where apps such as the MCP server get tokens: this process's broker, or a remote one"),
    mcpServer: McpServerSchema.optional()
  })
  .describe("token-broker configuration")

export type ConfigFile = z.output<typeof ConfigFileSchema>
export type ConfigFileInput = z.input<typeof ConfigFileSchema>
export { KeyRingSchema, SecretRef, StorageSchema }
export type SecretRefInput = z.output<typeof SecretRef>
