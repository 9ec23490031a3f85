import { providerSettingsProblem } from "@token-broker/core"
import { z } from "zod"
import { Duration } from "./duration.js"
import { providerId, SecretRef, scope, url } from "./fieldSchemas.js"

/** One upstream OAuth provider of the config file (`providers[]`). */
export const ProviderSchema = z
  .strictObject({
    id: providerId.describe("The provider's id in grants and requests"),
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
      ),
    replacedGrants: z
      .enum(["revoke", "keep"])
      .default("revoke")
      .describe(
        "revoke: a consent that replaces an active grant revokes the replaced one at the provider; keep: for a provider whose revocation of one refresh token ends every grant of the client and user"
      )
  })
  .superRefine((provider, ctx) => {
    const problem = providerSettingsProblem(provider)
    if (problem !== undefined) {
      ctx.addIssue({ code: "custom", path: problem.field.split("."), message: problem.message })
    }
  })
  .describe("One upstream authorization server + API")
