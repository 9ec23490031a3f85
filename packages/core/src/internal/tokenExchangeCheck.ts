import { Effect, Either } from "effect"
import type { AuthorizationServersService, ProviderClient } from "../AuthorizationServer.js"
import { ConfigInvalid } from "../Errors.js"
import { TOKEN_EXCHANGE_GRANT } from "./providerClient.js"

/** Whether a provider configured for token exchange says it supports it: a warning, an error, or null. */
export const checkProviderTokenExchange = (
  found: ProviderClient,
  index: number
): Effect.Effect<string | null, ConfigInvalid> =>
  Effect.gen(function* () {
    const provider = found.config
    if (provider.tokenExchange === undefined) return null
    const support = yield* Effect.either(found.tokenExchangeSupport)
    if (Either.isLeft(support)) {
      return `provider "${provider.id}": its metadata could not be read (${support.left.message}); whether it supports RFC 8693 token exchange is known at the first exchange`
    }
    if (support.right === "not_listed") {
      return yield* new ConfigInvalid({
        field: `providers[${index}].tokenExchange`,
        message: `provider "${provider.id}" is configured for token exchange, but its metadata's grant_types_supported does not list ${TOKEN_EXCHANGE_GRANT}: it does not support RFC 8693 token exchange; remove tokenExchange, or use a provider that supports it`
      })
    }
    if (support.right === "unknown") {
      return `provider "${provider.id}" is configured for token exchange, but its metadata has no grant_types_supported: whether it supports RFC 8693 token exchange is known at the first exchange`
    }
    return null
  })

export const checkTokenExchange = (
  servers: AuthorizationServersService
): Effect.Effect<ReadonlyArray<string>, ConfigInvalid> =>
  Effect.gen(function* () {
    const configured = [...servers.providers.entries()].filter(([, p]) => p.tokenExchange !== undefined)
    // every provider at once: a slow one delays the start by one request timeout at most
    const outcomes = yield* Effect.forEach(
      configured,
      ([index, provider]) =>
        Effect.flatMap(Effect.orDie(servers.get(provider.id)), (found) =>
          Effect.either(checkProviderTokenExchange(found, index))
        ),
      { concurrency: "unbounded" }
    )
    const warnings: Array<string> = []
    for (const outcome of outcomes) {
      if (Either.isLeft(outcome)) return yield* Effect.fail(outcome.left)
      if (outcome.right !== null) warnings.push(outcome.right)
    }
    return warnings
  })
