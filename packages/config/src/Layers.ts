import {
  AccessTokenCache,
  AuthorizationServer,
  type ConfigInvalid,
  GrantStore,
  InvalidSubjectToken,
  KeyRing,
  type StorageUnavailable,
  TokenBroker,
  TokenVerifier
} from "@token-broker/core"
import { Effect, Layer } from "effect"
import type { Config, KeyRingConfig, SessionTokensConfig, StorageConfig } from "./Config.js"
import { adapterLayer, sqlStore } from "./internal/adapters.js"

/** Every service the broker's use cases run on, as built from one config. */
export type BrokerServices =
  | TokenBroker.TokenBroker
  | GrantStore.GrantStore
  | KeyRing.KeyRing
  | AuthorizationServer.AuthorizationServers
  | TokenVerifier.TokenVerifier
  | AccessTokenCache.AccessTokenCache

export type BrokerLayerError = ConfigInvalid | StorageUnavailable

/**
 * The GrantStore chosen by `storage.kind`. Its adapter package (an optional peer dependency) is imported when
 * the layer is built; when it is not installed, building fails with `ConfigInvalid` naming the package.
 */
export const storeLayer = (storage: StorageConfig): Layer.Layer<GrantStore.GrantStore, BrokerLayerError> => {
  switch (storage.kind) {
    case "memory":
      return GrantStore.layerMemory
    case "sqlite":
    case "postgres":
    case "mysql":
      return Layer.unwrapEffect(Effect.map(sqlStore(storage), (store) => store.layer))
    case "vault":
      return adapterLayer("@token-broker/storage-vault", "storage.kind", "vault", ({ VaultGrantStore }) =>
        VaultGrantStore.layer(storage)
      )
  }
}

/** The KeyRing chosen by `keyRing.kind`; `vault-transit` imports the optional `@token-broker/storage-vault`. */
export const keyRingLayer = (keyRing: KeyRingConfig): Layer.Layer<KeyRing.KeyRing, BrokerLayerError> =>
  keyRing.kind === "local"
    ? KeyRing.layerLocal({ keys: keyRing.keys, current: keyRing.current })
    : adapterLayer("@token-broker/storage-vault", "keyRing.kind", "vault-transit", ({ TransitKeyRing }) =>
        Layer.project(TransitKeyRing.layer(keyRing), KeyRing.KeyRing, KeyRing.KeyRing, (service) => service)
      )

/** Without a sessionTokens section, users' tokens are refused with a message that says what to configure. */
const refusingVerifier: Layer.Layer<TokenVerifier.TokenVerifier> = Layer.succeed(
  TokenVerifier.TokenVerifier,
  {
    verify: () =>
      Effect.fail(
        new InvalidSubjectToken({
          reason: "unverifiable",
          message:
            "This broker verifies no user tokens: configure sessionTokens (issuer and audience) to use token exchange"
        })
      )
  }
)

/** The TokenVerifier of `sessionTokens`; introspection through a provider uses that provider's client. */
export const verifierLayer = (
  sessionTokens: SessionTokensConfig | undefined
): Layer.Layer<TokenVerifier.TokenVerifier, ConfigInvalid, AuthorizationServer.AuthorizationServers> =>
  sessionTokens === undefined
    ? refusingVerifier
    : Layer.effect(
        TokenVerifier.TokenVerifier,
        Effect.gen(function* () {
          const servers = yield* AuthorizationServer.AuthorizationServers
          const issuers: Array<TokenVerifier.IssuerOptions> = []
          for (const issuer of sessionTokens.issuers) {
            const introspection = issuer.introspection
            issuers.push({
              issuer: issuer.issuer,
              jwksUri: issuer.jwksUri,
              introspection:
                introspection === undefined
                  ? undefined
                  : "provider" in introspection
                    ? { client: yield* Effect.orDie(servers.get(introspection.provider)) }
                    : introspection
            })
          }
          return yield* TokenVerifier.make({
            issuers,
            allowInsecureRequests: sessionTokens.allowInsecureRequests,
            clockTolerance: sessionTokens.clockTolerance,
            introspectionCacheTtl: sessionTokens.introspectionCacheTtl,
            verifiedTokenCacheTtl: sessionTokens.verifiedTokenCacheTtl
          })
        })
      )

/**
 * The whole broker of a config: TokenBroker plus the GrantStore, KeyRing, AuthorizationServers,
 * TokenVerifier and AccessTokenCache it runs on (all exposed, for health checks and admin tools).
 * Fails to build with `ConfigInvalid` (naming the field) or `StorageUnavailable`.
 */
export const brokerLayer = (config: Config): Layer.Layer<BrokerServices, BrokerLayerError> => {
  const servers = AuthorizationServer.layer(config.providers)
  const base = Layer.mergeAll(
    storeLayer(config.storage),
    keyRingLayer(config.keyRing),
    servers,
    AccessTokenCache.layer(config.cache)
  )
  const withVerifier = verifierLayer(config.sessionTokens).pipe(Layer.provideMerge(base))
  return TokenBroker.layer(config.broker).pipe(Layer.provideMerge(withVerifier))
}
