/** `token-broker grants list | show | revoke`: the stored grants, read and revoked through core (never the raw tokens). */
import { Prompt } from "@effect/cli"
import type { CliApp } from "@effect/cli/CliApp"
import { type GrantFilter, GrantStore, KeyRing, TokenBroker } from "@token-broker/core"
import { Effect, Option } from "effect"
import { loadCliConfig, withBroker } from "../internal/Broker.js"
import { CliEnvironment } from "../internal/Environment.js"
import {
  type CliFailure,
  fromBrokerError,
  notFound,
  operationFailed,
  usageError
} from "../internal/Failure.js"
import { formatTime, printJson, printLine, printNote, styled, table } from "../internal/Output.js"

interface Ref {
  readonly tenant: string | undefined
  readonly subject: string
  readonly provider: string
}

export const list = (args: {
  readonly path: string
  readonly json: boolean
  readonly all: boolean
  readonly limit: number
  readonly cursor: string | null
  readonly filter: GrantFilter
}): Effect.Effect<void, CliFailure, CliEnvironment> =>
  Effect.gen(function* () {
    const config = yield* loadCliConfig(args.path)
    const page = yield* withBroker(
      config,
      Effect.gen(function* () {
        const broker = yield* TokenBroker.TokenBroker
        const items: Array<TokenBroker.GrantInfo> = []
        let cursor = args.cursor
        while (true) {
          const result = yield* broker.listGrants({ filter: args.filter, cursor, limit: args.limit })
          items.push(...result.items)
          cursor = result.nextCursor
          if (!args.all || cursor === null) break
        }
        return { items, nextCursor: cursor }
      }).pipe(Effect.mapError(fromBrokerError))
    )
    if (args.json) return yield* printJson(page)
    if (page.items.length === 0) {
      yield* printNote("No grants match.")
    } else {
      yield* printLine(
        table(
          ["TENANT", "SUBJECT", "PROVIDER", "STATUS", "VERSION", "UPDATED", "SCOPES"],
          page.items.map((g) => [
            g.tenant,
            g.subject,
            g.provider,
            g.status,
            String(g.version),
            formatTime(g.updatedAt),
            g.scopes.join(" ")
          ])
        )
      )
    }
    if (page.nextCursor !== null) {
      yield* printNote(`More grants: add --cursor ${page.nextCursor} (or --all)`)
    }
  })

export const show = (args: {
  readonly path: string
  readonly json: boolean
  readonly ref: Ref
}): Effect.Effect<void, CliFailure, CliEnvironment> =>
  Effect.gen(function* () {
    const config = yield* loadCliConfig(args.path)
    const tenant = args.ref.tenant ?? config.tenant
    const found = yield* withBroker(
      config,
      Effect.gen(function* () {
        const store = yield* GrantStore.GrantStore
        const ring = yield* KeyRing.KeyRing
        const record = yield* store.get({ tenant, subject: args.ref.subject, provider: args.ref.provider })
        return Option.map(record, (r) => ({
          grant: TokenBroker.toGrantInfo(r),
          keyIds: [
            ...new Set(
              [r.refreshToken, r.accessToken?.envelope].flatMap((e) =>
                e === undefined ? [] : [ring.kidOf(e) ?? "unknown"]
              )
            )
          ]
        }))
      }).pipe(Effect.mapError(fromBrokerError))
    )
    if (Option.isNone(found)) {
      return yield* notFound(
        `No grant of "${args.ref.subject}" for provider "${args.ref.provider}" (tenant ${tenant})`,
        `list them with: token-broker grants list --subject ${args.ref.subject}`
      )
    }
    const { grant, keyIds } = found.value
    if (args.json) return yield* printJson({ ...grant, keyIds })
    const status = yield* styled("stdout", grant.status === "active" ? "green" : "yellow", grant.status)
    const rows: Array<[string, string]> = [
      ["tenant", grant.tenant],
      ["subject", grant.subject],
      ["provider", grant.provider],
      ["status", status],
      ["version", String(grant.version)],
      ["scopes", grant.scopes.join(" ")],
      ["identity", grant.identity === null ? "-" : `${grant.identity.subject} at ${grant.identity.issuer}`],
      ["created", formatTime(grant.createdAt)],
      ["updated", formatTime(grant.updatedAt)],
      ["last refreshed", formatTime(grant.lastRefreshedAt)],
      ["access token expires", formatTime(grant.accessTokenExpiresAt)],
      [
        "refresh token expires",
        grant.refreshTokenExpiresAt === null ? "never (or unknown)" : formatTime(grant.refreshTokenExpiresAt)
      ],
      [
        "failures",
        grant.failureCount === 0 ? "0" : `${grant.failureCount} (last: ${grant.lastErrorCode ?? "-"})`
      ],
      ["encrypted under key", keyIds.join(", ")]
    ]
    const width = Math.max(...rows.map(([k]) => k.length))
    yield* printLine(rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join("\n"))
  })

/** Asks on the terminal; refuses (exit 2) when there is no terminal to ask on. */
const confirm = (message: string): Effect.Effect<boolean, CliFailure, CliEnvironment | CliApp.Environment> =>
  Effect.gen(function* () {
    const env = yield* CliEnvironment
    if (!env.stdinIsTTY) {
      return yield* usageError(
        "Refusing to revoke without confirmation: stdin is not a terminal",
        "pass --yes"
      )
    }
    return yield* Prompt.run(Prompt.confirm({ message, initial: false })).pipe(
      Effect.catchTag("QuitException", () => Effect.succeed(false))
    )
  })

export const revoke = (args: {
  readonly path: string
  readonly json: boolean
  readonly yes: boolean
  readonly ref: Ref
}): Effect.Effect<void, CliFailure, CliEnvironment | CliApp.Environment> =>
  Effect.gen(function* () {
    const config = yield* loadCliConfig(args.path)
    const tenant = args.ref.tenant ?? config.tenant
    const ref = { tenant, subject: args.ref.subject, provider: args.ref.provider }
    const result = yield* withBroker(
      config,
      Effect.gen(function* () {
        const broker = yield* TokenBroker.TokenBroker
        const existing = yield* broker.grantStatus(ref).pipe(Effect.mapError(fromBrokerError))
        if (Option.isNone(existing)) {
          return yield* notFound(
            `No grant of "${ref.subject}" for provider "${ref.provider}" (tenant ${tenant}); nothing to revoke`
          )
        }
        if (!args.yes) {
          const ok = yield* confirm(
            `Revoke the grant of ${ref.subject} for ${ref.provider}? The provider is told (RFC 7009) and the grant is deleted here`
          )
          if (!ok) return yield* operationFailed("Not revoked.")
        }
        return yield* broker.revoke(ref).pipe(Effect.mapError(fromBrokerError))
      })
    )
    if (args.json) yield* printJson({ ...ref, ...result })
    const what = `grant of ${ref.subject} for ${ref.provider}`
    switch (result.upstream) {
      case "revoked": {
        const count = result.revokedAtProvider.accessTokens
        const access =
          result.accessTokens === "revoked"
            ? ` (its refresh token and ${count} current access token${count === 1 ? "" : "s"})`
            : result.accessTokens === "not_supported"
              ? " (its refresh token; the provider does not revoke access tokens, they work until they expire)"
              : result.accessTokens === "failed"
                ? " (its refresh token; revoking its current access tokens failed, they work until they expire)"
                : ""
        if (!args.json) yield* printLine(`Revoked the ${what} at the provider${access} and removed it here.`)
        return
      }
      case "not_supported":
        if (!args.json) yield* printLine(`Removed the ${what}; the provider has no revocation endpoint.`)
        return
      default:
        return yield* operationFailed(
          `Removed the ${what} here, but the provider did not confirm the revocation: ${result.upstreamError?.message ?? result.upstream}`,
          "the refresh token may still be valid at the provider until it expires; revoke the app there"
        )
    }
  })
