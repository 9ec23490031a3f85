import { type Duration, Effect } from "effect"
import * as client from "openid-client"
import type { Agent } from "undici"
import type { ProviderConfig, ProviderEndpoints } from "../Provider.js"
import { cachedWithCooldown } from "./cachedWithCooldown.js"
import { type Prepared, timeoutSeconds } from "./preparedProvider.js"
import { call, rejectedGrant } from "./providerCall.js"
import { makeFetch } from "./providerFetch.js"

export const DEFAULT_DISCOVERY_COOLDOWN: Duration.DurationInput = "5 seconds"

/** RFC 8414 / OpenID Connect metadata names of the configurable endpoints. */
const METADATA_NAMES: Record<keyof ProviderEndpoints, keyof client.ServerMetadata> = {
  authorization: "authorization_endpoint",
  token: "token_endpoint",
  revocation: "revocation_endpoint",
  introspection: "introspection_endpoint",
  jwks: "jwks_uri",
  userinfo: "userinfo_endpoint"
}

/** The configured endpoints laid over the metadata (each one given replaces the metadata's). */
const withEndpoints = (provider: ProviderConfig, server: client.ServerMetadata): client.ServerMetadata => {
  const merged: Record<string, unknown> = { ...server }
  for (const [name, value] of Object.entries(provider.endpoints ?? {})) {
    if (value !== undefined) merged[METADATA_NAMES[name as keyof ProviderEndpoints]] = value
  }
  return merged as client.ServerMetadata
}

/**
 * The provider's metadata: OpenID Connect discovery or RFC 8414 metadata, fetched lazily through the
 * rewrite, shared and cached (failures for `cooldown`); or, with discovery "none", the configured endpoints.
 */
export const discoverMetadata = (prepared: Prepared, cooldown: Duration.DurationInput, agent: Agent) => {
  const { provider, auth, insecure } = prepared
  const discovery = provider.discovery ?? "openid-configuration"
  if (discovery === "none") {
    return Effect.succeed(
      Effect.succeed<client.ServerMetadata>(withEndpoints(provider, { issuer: provider.issuer }))
    )
  }
  const discover = call(provider.id, "discovery", (signal) =>
    client.discovery(new URL(provider.issuer), provider.clientId, undefined, auth, {
      [client.customFetch]: makeFetch(agent, provider.internalBaseUrl, signal),
      timeout: timeoutSeconds(provider),
      algorithm: discovery === "oauth-authorization-server" ? "oauth2" : "oidc",
      execute: insecure ? [client.allowInsecureRequests] : []
    })
  ).pipe(
    Effect.map(
      (configuration): client.ServerMetadata => withEndpoints(provider, configuration.serverMetadata())
    ),
    Effect.mapError((error) =>
      // A discovery request carries no grant: an `invalid_grant` here can only be a broken server.
      error._tag === "InvalidGrant" ? rejectedGrant(provider.id, error) : error
    )
  )
  return cachedWithCooldown(discover, cooldown)
}
