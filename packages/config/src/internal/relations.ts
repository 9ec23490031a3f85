import type { ConfigInvalid } from "@token-broker/core"
import { Effect } from "effect"
import { invalid } from "./issues.js"
import type { ConfigFile } from "./schema.js"
import { checkHttps } from "./secrets.js"

/** Adds the `id` of the entry at `field` to `seen`; fails when an earlier entry of its list has it already. */
const addUnique = (
  seen: Set<string>,
  id: string,
  field: string,
  what: "provider" | "caller"
): Effect.Effect<void, ConfigInvalid> =>
  seen.has(id)
    ? Effect.fail(
        invalid(`${field}.id`, `${field}.id: ${what} "${id}" is listed twice; give each ${what} its own id`)
      )
    : Effect.sync(() => {
        seen.add(id)
      })

/** Cross-field rules that a schema for editors cannot state. */
export const checkRelations = (file: ConfigFile): Effect.Effect<void, ConfigInvalid> =>
  Effect.gen(function* () {
    const ids = new Set<string>()
    for (const [i, provider] of file.providers.entries()) {
      const field = `providers[${i}]`
      yield* addUnique(ids, provider.id, field, "provider")
      yield* checkHttps(
        provider.issuer,
        provider.allowInsecureRequests,
        `${field}.issuer`,
        `${field}.allowInsecureRequests`
      )
      if (provider.internalBaseUrl !== undefined) {
        yield* checkHttps(
          provider.internalBaseUrl.to,
          provider.allowInsecureRequests,
          `${field}.internalBaseUrl.to`,
          `${field}.allowInsecureRequests`
        )
      }
    }
    const callerIds = new Set<string>()
    for (const [i, caller] of file.callers.entries()) {
      const field = `callers[${i}]`
      yield* addUnique(callerIds, caller.id, field, "caller")
      for (const [j, provider] of caller.providers.entries()) {
        if (provider !== "*" && !ids.has(provider)) {
          return yield* invalid(
            `${field}.providers[${j}]`,
            `${field}.providers[${j}]: "${provider}" is not a configured provider (known: ${[...ids].join(", ")}); use one of them or "*"`
          )
        }
      }
      if (caller.tokenExchange && file.sessionTokens === undefined) {
        return yield* invalid(
          `${field}.tokenExchange`,
          `${field}.tokenExchange: token exchange needs a sessionTokens section (the issuer and audience of users' tokens)`
        )
      }
    }
    if (file.keyRing.kind === "local") {
      const kids = file.keyRing.keys.map((k) => k.kid)
      const twice = kids.find((kid, i) => kids.indexOf(kid) !== i)
      if (twice !== undefined) {
        return yield* invalid("keyRing.keys", `keyRing.keys: key id "${twice}" is listed twice`)
      }
      if (file.keyRing.current !== undefined && !kids.includes(file.keyRing.current)) {
        return yield* invalid(
          "keyRing.current",
          `keyRing.current: "${file.keyRing.current}" is not one of keyRing.keys (${kids.join(", ")})`
        )
      }
    }
    if (file.sessionTokens !== undefined) {
      for (const [i, issuer] of file.sessionTokens.issuers.entries()) {
        const field = `sessionTokens.issuers[${i}]`
        yield* checkHttps(
          issuer.issuer,
          file.sessionTokens.allowInsecureRequests,
          `${field}.issuer`,
          "sessionTokens.allowInsecureRequests"
        )
        const introspection = issuer.introspection
        if (introspection !== undefined && "provider" in introspection && !ids.has(introspection.provider)) {
          return yield* invalid(
            `${field}.introspection.provider`,
            `${field}.introspection.provider: "${introspection.provider}" is not a configured provider`
          )
        }
      }
    }
    if (file.tokenSource.kind === "remote") {
      yield* checkHttps(
        file.tokenSource.url,
        file.tokenSource.allowInsecureRequests,
        "tokenSource.url",
        "tokenSource.allowInsecureRequests"
      )
    }
  })
