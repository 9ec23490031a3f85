import { randomUUID } from "node:crypto"
import { Scopes, type TokenBroker } from "@token-broker/core"
import { Duration, Effect, Option, Schedule } from "effect"
import { z } from "zod"
import { consentRequiredResult, describeFailure, runBroker, usesExchange } from "../internal/brokered.js"
import { callerOf, errorResult, type ToolContext, textResult } from "../ToolContext.js"

/** How long a started consent is watched for its completion (the broker's pending consents live 10 min). */
const WATCH_FOR = Duration.minutes(10)

const iso = (epochMs: number | null) => (epochMs === null ? null : new Date(epochMs).toISOString())

const providerInput = (ctx: ToolContext) => {
  const ids = ctx.providers.map((p) => p.id)
  return z.enum(ids as [string, ...string[]], {
    error: () => `provider must be one of: ${ids.join(", ")}`
  })
}

const statusOf = (grant: TokenBroker.GrantInfo, now: number) => {
  const accessExpired = grant.accessTokenExpiresAt !== null && grant.accessTokenExpiresAt <= now
  const refreshExpired = grant.refreshTokenExpiresAt !== null && grant.refreshTokenExpiresAt <= now
  if (grant.status !== "active" || refreshExpired) {
    return {
      connected: false,
      next: `Call connect_provider with provider "${grant.provider}" to renew the connection.`
    }
  }
  return {
    connected: true,
    next: accessExpired
      ? "Connected; a fresh access token is obtained on the next use."
      : "Connected; nothing to do. Call disconnect_provider to remove the connection."
  }
}

/** `connection_status`, `connect_provider`, `disconnect_provider`. */
export const registerConnectionTools = (ctx: ToolContext): void => {
  ctx.server.registerTool(
    "connection_status",
    {
      title: "Connection status",
      description:
        "Shows, for each upstream provider this server can act on, whether you are connected, the granted scopes, when the current access token expires, when it was last refreshed, and what to do next.",
      outputSchema: {
        subject: z.string(),
        providers: z.array(z.looseObject({ provider: z.string(), mode: z.string().optional() }))
      },
      annotations: { readOnlyHint: true, idempotentHint: true, openWorldHint: false }
    },
    async (extra) => {
      const caller = callerOf(extra)
      const now = Date.now()
      const rows: Array<Record<string, unknown>> = []
      for (const provider of ctx.providers) {
        if (usesExchange(ctx, provider.id)) {
          rows.push({
            provider: provider.id,
            mode: "session",
            connected: true,
            scopes: provider.defaultScopes,
            next: "Nothing to do: tokens are obtained from your sign-in by token exchange, for each call."
          })
          continue
        }
        const status = await runBroker(
          ctx,
          ctx.tokenSource.grantStatus({ subject: caller.subject, provider: provider.id })
        )
        if (!status.ok) {
          rows.push({
            provider: provider.id,
            mode: "background",
            connected: null,
            error: status.error === null ? "internal error" : describeFailure(status.error, provider.id)
          })
          continue
        }
        if (Option.isNone(status.value)) {
          rows.push({
            provider: provider.id,
            mode: "background",
            connected: false,
            next: `Call connect_provider with provider "${provider.id}" to connect.`
          })
          continue
        }
        const grant = status.value.value
        rows.push({
          provider: provider.id,
          mode: "background",
          ...statusOf(grant, now),
          status: grant.status,
          scopes: grant.scopes,
          accessTokenExpiresAt: iso(grant.accessTokenExpiresAt),
          refreshTokenExpiresAt: iso(grant.refreshTokenExpiresAt),
          lastRefreshedAt: iso(grant.lastRefreshedAt),
          connectedAt: iso(grant.createdAt),
          ...(grant.lastErrorCode === null ? {} : { lastError: grant.lastErrorCode })
        })
      }
      const lines = rows.map((row) =>
        row.connected === true
          ? `- ${row.provider}: connected${Array.isArray(row.scopes) ? ` (scopes: ${Scopes.join(row.scopes)})` : ""}${row.accessTokenExpiresAt ? `, access token expires ${row.accessTokenExpiresAt}` : ""}${row.lastRefreshedAt ? `, last refreshed ${row.lastRefreshedAt}` : ""}. ${row.next}`
          : row.connected === false
            ? `- ${row.provider}: not connected. ${row.next}`
            : `- ${row.provider}: unknown. ${row.error}`
      )
      return textResult(`Connections of ${caller.subject}:\n${lines.join("\n")}`, {
        subject: caller.subject,
        providers: rows
      })
    }
  )

  ctx.server.registerTool(
    "connect_provider",
    {
      title: "Connect a provider",
      description:
        "Starts consent for an upstream provider: you sign in there in a browser and allow this server to act for you. Opens the link through the client where it can (URL elicitation), otherwise answers with the link.",
      inputSchema: {
        provider: providerInput(ctx).describe("The provider to connect"),
        scopes: z
          .array(z.string().regex(Scopes.SCOPE_TOKEN, { message: Scopes.SCOPE_TOKEN_MESSAGE }))
          .min(1, { message: "scopes, when given, must name at least one scope" })
          .optional()
          .describe("Scopes to ask for; default: the provider's configured scopes")
      },
      outputSchema: {
        status: z.enum(["not_needed", "pending", "declined", "cancelled", "consent_required"]),
        provider: z.string(),
        authorizationUrl: z.string().optional(),
        expiresAt: z.string().optional(),
        delivery: z.enum(["link", "elicitation"]).optional(),
        elicitationId: z.string().optional()
      },
      annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: true }
    },
    async ({ provider, scopes }, extra) => {
      const caller = callerOf(extra)
      if (usesExchange(ctx, provider)) {
        return textResult(
          `"${provider}" needs no connection: tokens are obtained from your sign-in by token exchange.`,
          { status: "not_needed", provider }
        )
      }
      const before = await runBroker(ctx, ctx.tokenSource.grantStatus({ subject: caller.subject, provider }))
      const linkResult = await consentRequiredResult(
        ctx,
        caller,
        provider,
        `you asked to connect "${provider}".`,
        scopes
      )
      const structured = linkResult.structuredContent
      if (structured?.status !== "consent_required" || typeof structured.authorizationUrl !== "string")
        return linkResult
      const url = structured.authorizationUrl
      if (ctx.server.server.getClientCapabilities()?.elicitation?.url === undefined) {
        return textResult(
          `Open this link in a browser to connect "${provider}" (sign in and allow access), then call connection_status:\n${url}`,
          { ...structured, status: "pending", delivery: "link" }
        )
      }
      const elicitationId = randomUUID()
      const answer = await ctx.server.server
        .elicitInput({
          mode: "url",
          message: `Connect "${provider}": sign in there and allow this server to act for you.`,
          elicitationId,
          url
        })
        .then(
          (result) => result.action,
          () => "failed" as const
        )
      if (answer === "failed") {
        return textResult(
          `Open this link in a browser to connect "${provider}", then call connection_status:\n${url}`,
          {
            ...structured,
            status: "pending",
            delivery: "link"
          }
        )
      }
      if (answer !== "accept") {
        return textResult(
          `Connecting "${provider}" was ${answer === "decline" ? "declined" : "cancelled"}; nothing changed.`,
          {
            status: answer === "decline" ? "declined" : "cancelled",
            provider
          }
        )
      }
      // Tell the client when the consent completes (the callback may land on this server or on the broker).
      const since =
        before.ok && Option.isSome(before.value) ? before.value.value.updatedAt : Number.NEGATIVE_INFINITY
      const notify = ctx.server.server.createElicitationCompletionNotifier(elicitationId)
      ctx.background(
        ctx.tokenSource.grantStatus({ subject: caller.subject, provider }).pipe(
          Effect.flatMap((grant) =>
            Option.isSome(grant) && grant.value.updatedAt > since && grant.value.status === "active"
              ? Effect.void
              : Effect.fail("pending" as const)
          ),
          Effect.retry(Schedule.spaced("1 second")),
          Effect.timeout(WATCH_FOR),
          Effect.flatMap(() => Effect.promise(() => notify().catch(() => undefined))),
          Effect.ignore
        )
      )
      return textResult(
        `The consent page for "${provider}" was opened; once you allowed access there, call connection_status (or retry your request).`,
        { ...structured, status: "pending", delivery: "elicitation", elicitationId }
      )
    }
  )

  ctx.server.registerTool(
    "disconnect_provider",
    {
      title: "Disconnect a provider",
      description:
        "Revokes your grant at the provider and forgets it here. Tools that need the provider will ask for consent again.",
      inputSchema: { provider: providerInput(ctx).describe("The provider to disconnect") },
      outputSchema: {
        provider: z.string(),
        removed: z.boolean(),
        upstream: z.string(),
        upstreamError: z.string().optional()
      },
      annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: true }
    },
    async ({ provider }, extra) => {
      const caller = callerOf(extra)
      const result = await runBroker(ctx, ctx.tokenSource.revoke({ subject: caller.subject, provider }))
      if (!result.ok) {
        return errorResult(
          `Disconnecting "${provider}" failed: ${result.error === null ? "internal error" : describeFailure(result.error, provider)}`
        )
      }
      const { removed, upstream, upstreamError } = result.value
      const upstreamText =
        upstream === "revoked"
          ? "revoked at the provider"
          : upstream === "not_supported"
            ? "the provider offers no revocation; the grant was forgotten here"
            : upstream === "failed"
              ? `revocation at the provider failed (${upstreamError?.code ?? "error"}); the grant was forgotten here anyway`
              : "nothing to revoke"
      return textResult(
        removed
          ? `Disconnected "${provider}": ${upstreamText}.`
          : `"${provider}" was not connected; nothing to do.`,
        {
          provider,
          removed,
          upstream,
          ...(upstreamError === undefined ? {} : { upstreamError: upstreamError.code })
        }
      )
    }
  )
}
