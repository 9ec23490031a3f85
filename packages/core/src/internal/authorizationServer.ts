import type { Duration } from "effect"
import { Effect } from "effect"
import type * as client from "openid-client"
import type { AuthorizationServersService, ProviderClient } from "../AuthorizationServer.js"
import { ConfigInvalid, ProviderNotFound } from "../Errors.js"
import type { ClientAuthentication, ProviderConfig } from "../Provider.js"
import { checkUrl, prepare } from "./preparedProvider.js"
import { makeProviderClient } from "./providerClient.js"
import { ProviderAgent } from "./providerFetch.js"
import { DEFAULT_DISCOVERY_COOLDOWN, discoverMetadata } from "./providerMetadata.js"

// The service is composed here from one module per concept: configuration checks and client
// authentication (preparedProvider, clientAuthentication), the HTTP fetch (providerFetch), discovery
// (providerMetadata), the grant, revocation and introspection requests (providerClient, tokenResponses)
// and the start-up token exchange check (tokenExchangeCheck).
export { DEFAULT_REQUEST_TIMEOUT } from "./preparedProvider.js"
export { ACCESS_TOKEN_TYPE, TOKEN_EXCHANGE_GRANT } from "./providerClient.js"
export { makeFetch, rewriteUrl, withScopedAgent } from "./providerFetch.js"
export { DEFAULT_DISCOVERY_COOLDOWN } from "./providerMetadata.js"
export { checkProviderTokenExchange, checkTokenExchange } from "./tokenExchangeCheck.js"

export interface MakeOptions {
  /** How long a failed discovery is remembered before the next call tries again. Default 5 s. */
  readonly discoveryCooldown?: Duration.DurationInput | undefined
}

export const make = (
  providers: ReadonlyArray<ProviderConfig>,
  options: MakeOptions = {}
): Effect.Effect<AuthorizationServersService, ConfigInvalid> =>
  Effect.gen(function* () {
    const seen = new Set<string>()
    for (const [index, provider] of providers.entries()) {
      if (seen.has(provider.id)) {
        return yield* new ConfigInvalid({
          field: `providers[${index}].id`,
          message: `provider id "${provider.id}" is configured twice`
        })
      }
      seen.add(provider.id)
    }
    const prepared = yield* Effect.forEach(providers, prepare)
    const cooldown = options.discoveryCooldown ?? DEFAULT_DISCOVERY_COOLDOWN
    const agent = (yield* ProviderAgent).agent()
    const clients = new Map<string, ProviderClient>()
    for (const entry of prepared) {
      clients.set(
        entry.provider.id,
        makeProviderClient(entry, yield* discoverMetadata(entry, cooldown, agent), agent)
      )
    }
    return {
      providers,
      get: (id: string) => {
        const found = clients.get(id)
        return found === undefined
          ? Effect.fail(new ProviderNotFound({ provider: id, message: `no provider "${id}" is configured` }))
          : Effect.succeed(found)
      }
    }
  })

/**
 * An RFC 7662 client of one introspection endpoint known without discovery (the TokenVerifier's
 * `introspection.endpoint` option).
 */
export const makeIntrospectionClient = (options: {
  readonly issuer: string
  readonly endpoint: string
  readonly clientId: string
  readonly clientAuthentication: ClientAuthentication
  readonly allowInsecureRequests?: boolean | undefined
  readonly requestTimeout?: Duration.DurationInput | undefined
  readonly field: string
}): Effect.Effect<Pick<ProviderClient, "introspect">, ConfigInvalid> =>
  Effect.gen(function* () {
    const provider: ProviderConfig = {
      id: `introspection ${options.issuer}`,
      issuer: options.issuer,
      clientId: options.clientId,
      clientAuthentication: options.clientAuthentication,
      redirectUri: options.endpoint,
      defaultScopes: [],
      allowInsecureRequests: options.allowInsecureRequests,
      requestTimeout: options.requestTimeout
    }
    const prepared = yield* prepare(provider, 0).pipe(
      Effect.mapError(
        (error) =>
          new ConfigInvalid({
            field: `${options.field}.${error.field.replace(/^providers\[0\]\./, "")}`,
            message: error.message
          })
      )
    )
    yield* checkUrl(
      options.endpoint,
      prepared.insecure,
      () => new ConfigInvalid({ field: `${options.field}.endpoint`, message: "introspection endpoint: " })
    )
    const server: client.ServerMetadata = { issuer: options.issuer, introspection_endpoint: options.endpoint }
    return makeProviderClient(prepared, Effect.succeed(server), (yield* ProviderAgent).agent())
  })
