import { readFile } from "node:fs/promises"
import { z } from "zod"

const positiveSeconds = z.number().int().positive()

/** A demo user that can sign in at the login page. */
export const DevIdpUserSchema = z.object({
  sub: z.string().min(1),
  username: z.string().min(1),
  password: z.string().min(1),
  name: z.string().optional(),
  email: z.email().optional()
})

/** An extra protected resource (RFC 8707 resource indicator) that access tokens can be issued for. */
export const DevIdpResourceSchema = z.object({
  /** The resource indicator, also the `aud` of the issued access tokens (an absolute URI). */
  audience: z.string().refine((value) => URL.canParse(value), "must be an absolute URI"),
  /** Scopes this resource understands (the access token's `scope` is filtered to these). */
  scopes: z.array(z.string().regex(/^[\x21\x23-\x5B\x5D-\x7E]+$/, "invalid scope token")).min(1),
  /** `jwt` (default, verifiable locally) or `opaque` (only through introspection). */
  format: z.enum(["jwt", "opaque"]).default("jwt"),
  /** Lifetime of access tokens for this resource; defaults to `accessTokenTtlSeconds`. */
  accessTokenTtlSeconds: positiveSeconds.optional()
})

/**
 * Extra client metadata in oidc-provider's (RFC 7591) snake_case form. Unknown keys are passed on
 * to oidc-provider, which validates them when the client is first used.
 */
export const DevIdpClientMetadataSchema = z.looseObject({
  client_id: z.string().min(1),
  client_secret: z.string().min(1).optional(),
  redirect_uris: z.array(z.string()).optional(),
  grant_types: z.array(z.string()).optional(),
  token_endpoint_auth_method: z.string().optional()
})

export const DevIdpOptionsSchema = z
  .object({
    /** TCP port; 0 (default) picks a free port. */
    port: z.number().int().min(0).max(65_535).default(0),
    host: z.string().min(1).default("127.0.0.1"),
    /** Issuer identifier override (e.g. a public URL in front of a proxy); default `http://host:port`. */
    issuer: z.url({ protocol: /^https?$/ }).optional(),
    accessTokenTtlSeconds: positiveSeconds.default(300),
    /** Absolute refresh-token lifetime, counted from the first issue of the grant's refresh token. */
    refreshTokenTtlSeconds: positiveSeconds.default(30 * 24 * 60 * 60),
    /** Idle expiry: a refresh token not used for this long expires (optional). */
    refreshTokenIdleSeconds: positiveSeconds.optional(),
    /**
     * Within this many seconds after a refresh token was rotated away, presenting it again succeeds
     * (a new token pair is issued) instead of revoking the grant. 0 (default): any reuse revokes.
     */
    refreshTokenReuseGraceSeconds: z.number().int().min(0).default(0),
    /**
     * What a revocation (RFC 7009) of a rotated-away refresh token does: "revokes_grant" (default,
     * oidc-provider's) revokes the whole grant, its successor included; "ignored" answers 200 and
     * revokes nothing, as a provider that treats a consumed token as unknown does, so only a revocation
     * of the newest refresh token ends the grant.
     */
    consumedRefreshTokenRevocation: z.enum(["revokes_grant", "ignored"]).default("revokes_grant"),
    /** Serve the test-control API under `/__dev/`. */
    controls: z.boolean().default(true),
    /** Extra redirect URIs registered for the default clients. */
    redirectUris: z.array(z.url()).default([]),
    /** Fixed secrets for the default confidential clients, by client id; otherwise random at start. */
    clientSecrets: z.record(z.string(), z.string().min(16)).default({}),
    /** Extra clients (oidc-provider client metadata). */
    clients: z.array(DevIdpClientMetadataSchema).default([]),
    /** Demo users; replaces the default users `alice` and `bob` (random passwords) when given. */
    users: z.array(DevIdpUserSchema).min(1).optional(),
    /** Extra resources besides the notes API and the opaque-token resource. */
    resources: z.array(DevIdpResourceSchema).default([]),
    /**
     * Plain OAuth 2.0, GitHub-style: no OpenID Connect discovery (`/.well-known/openid-configuration`
     * answers 404), no ID tokens, refresh tokens without `offline_access`, token-endpoint errors answered
     * with status 200 and the error in the JSON body, `refresh_token_expires_in` instead of
     * `refresh_expires_in`, no RFC 8693 token exchange, and a GitHub-style `GET /user` (`id`, `login`).
     * `metadata`: "none" (default) or "oauth-authorization-server" (serve RFC 8414 metadata).
     */
    plainOAuth: z
      .strictObject({ metadata: z.enum(["none", "oauth-authorization-server"]).default("none") })
      .optional(),
    /**
     * Audience of an MCP server (its canonical URL): adds a JWT resource with the scopes
     * `mcp:tools notes:read notes:write`, so a Flow-1 token can later be exchanged for notes scopes.
     */
    mcpAudience: z
      .string()
      .refine((value) => URL.canParse(value), "must be an absolute URI")
      .optional()
  })
  .strict()

/** Options of `startDevIdp` as a caller writes them (every field optional). */
export type DevIdpOptions = z.input<typeof DevIdpOptionsSchema>
/** Options after validation and defaults. */
export type ResolvedDevIdpOptions = z.output<typeof DevIdpOptionsSchema>
export type DevIdpUser = z.output<typeof DevIdpUserSchema>
export type DevIdpResource = z.output<typeof DevIdpResourceSchema>
/** A resource as a caller writes it (`format` optional). */
export type DevIdpResourceInput = z.input<typeof DevIdpResourceSchema>
export type DevIdpClientMetadata = z.output<typeof DevIdpClientMetadataSchema>

/** Validates options; throws a `z.ZodError` naming the offending field. */
export const parseDevIdpOptions = (input: unknown): ResolvedDevIdpOptions =>
  DevIdpOptionsSchema.parse(input ?? {})

/** Reads a JSON config file and validates it as `DevIdpOptions`. */
export const loadDevIdpConfigFile = async (path: string): Promise<DevIdpOptions> => {
  const text = await readFile(path, "utf8")
  const json: unknown = JSON.parse(text)
  return DevIdpOptionsSchema.parse(json)
}
