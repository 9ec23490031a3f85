import { type Clock, Effect } from "effect"
import type { AccessTokenCacheService } from "../AccessTokenCache.js"
import type { AuthorizationServersService } from "../AuthorizationServer.js"
import { InvalidRequest } from "../Errors.js"
import type { GrantKey } from "../Grant.js"
import type { GrantStoreDriver } from "../GrantStore.js"
import type { KeyRingService } from "../KeyRing.js"
import { isProviderId, PROVIDER_ID_RULE } from "../ProviderId.js"
import type { GrantRef } from "../TokenBroker.js"
import type { TokenVerifierService } from "../TokenVerifier.js"
import type { makeRefreshProtocol, RefreshSettings } from "./refreshProtocol.js"
import type { SingleFlight } from "./singleFlight.js"

/**
 * What every TokenBroker use case shares: the services it runs on, the settings derived from the
 * options once, and the one refresh protocol and single flight of this broker instance.
 */
export interface BrokerContext {
  readonly store: GrantStoreDriver
  readonly keyRing: KeyRingService
  readonly servers: AuthorizationServersService
  readonly cache: AccessTokenCacheService
  readonly verifier: TokenVerifierService
  readonly clock: Clock.Clock
  readonly settings: RefreshSettings
  readonly protocol: ReturnType<typeof makeRefreshProtocol>
  readonly flights: SingleFlight
  readonly defaultTenant: string
  readonly earlyRefreshMs: number
  readonly pendingTtlMs: number
  readonly sessionAudience: ReadonlyArray<string>
  readonly rejectionsBeforeReconsent: number
  /** The grant a request names, validated. */
  readonly keyOf: (ref: GrantRef) => Effect.Effect<GrantKey, InvalidRequest>
}

/** The tenant of requests that name none, unless the broker's options name another. */
export const DEFAULT_TENANT = "default"

/** The grant a request names, validated: tenant (default filled in) and subject 1-256 characters, a provider id. */
export const grantKeyOf =
  (defaultTenant: string) =>
  (ref: GrantRef): Effect.Effect<GrantKey, InvalidRequest> => {
    const tenant = ref.tenant ?? defaultTenant
    if (tenant.length === 0 || tenant.length > 256) {
      return Effect.fail(new InvalidRequest({ field: "tenant", message: "tenant must be 1-256 characters" }))
    }
    if (ref.subject.length === 0 || ref.subject.length > 256) {
      return Effect.fail(
        new InvalidRequest({ field: "subject", message: "subject must be 1-256 characters" })
      )
    }
    if (!isProviderId(ref.provider)) {
      return Effect.fail(
        new InvalidRequest({ field: "provider", message: `provider must be ${PROVIDER_ID_RULE}` })
      )
    }
    return Effect.succeed({ tenant, subject: ref.subject, provider: ref.provider })
  }
