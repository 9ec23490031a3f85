import { PROVIDER_ID_PATTERN, Scopes } from "@token-broker/core"
import { z } from "zod"

// The pieces every section of the config file is written with: secret references, ids, URLs, scopes.

export const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/

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

/** The provider-id rule is core's (one pattern for grants, requests and config). */
export const PROVIDER_ID = PROVIDER_ID_PATTERN
export const KID = /^[A-Za-z0-9_-]{1,64}$/
export const CALLER_ID = /^[A-Za-z0-9._:@-]{1,128}$/
export const PG_SCHEMA = /^[a-z_][a-z0-9_]{0,62}$/

export const url = (what: string) => z.url({ message: `must be an absolute URL (${what})` })
export const scope = z.string().regex(Scopes.SCOPE_TOKEN, { message: Scopes.SCOPE_TOKEN_MESSAGE })

/** An id of `pattern`, refused with the characters it may use (`rule`). */
const idOf = (pattern: RegExp, rule: string) => z.string().regex(pattern, { message: `use ${rule}` })
export const providerId = idOf(PROVIDER_ID, "1-64 characters of A-Z a-z 0-9 . _ -, e.g. nextcloud")
export const callerId = idOf(CALLER_ID, "1-128 characters of A-Z a-z 0-9 . _ : @ -")
export const kid = idOf(KID, "1-64 characters of A-Z a-z 0-9 _ -")

/**
 * Where a server listens, and where its users reach it: `reachedAt` says what `publicUrl` is, `fallback`
 * what it is when absent. Each server has its own `defaultPort`.
 */
export const listenerFields = (defaultPort: number, reachedAt: string, fallback: string) => ({
  host: z.string().min(1).default("127.0.0.1"),
  port: z.number().int().min(0).max(65_535).default(defaultPort),
  publicUrl: url(reachedAt).optional().describe(fallback)
})

/** fastify's `trustProxy`: `true`, a hop count, or the addresses/CIDRs of the load balancer. */
export const trustProxy = z.union([z.boolean(), z.string().min(1), z.number().int().min(1)]).default(false)

export const logLevel = z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info")
