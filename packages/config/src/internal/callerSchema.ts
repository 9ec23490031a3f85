import { z } from "zod"
import { secretHashProblem } from "../CallerSecret.js"
import { callerId } from "./fieldSchemas.js"

/** A registered caller of the HTTP broker: its client id, its secret as a scrypt hash (never the secret), and its policy. */
export const CallerSchema = z
  .strictObject({
    id: callerId.describe("The client id the caller authenticates with"),
    secretHash: z
      .string()
      .regex(/^scrypt\$/, {
        message:
          'store the secret hashed: run `printf \'%s\' "$SECRET" | token-broker hash-secret` (the @token-broker/cli package) and paste its "scrypt$..." output'
      })
      .superRefine((hash, ctx) => {
        if (!hash.startsWith("scrypt$")) return
        const problem = secretHashProblem(hash)
        if (problem !== undefined) {
          ctx.addIssue({
            code: "custom",
            message: `${problem}: hash the secret again with \`token-broker hash-secret\` (the @token-broker/cli package)`
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
