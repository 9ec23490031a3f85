import { randomBytes } from "node:crypto"
import {
  AccessTokenCache,
  AuthorizationServer,
  type GrantKey,
  type GrantRecord,
  GrantStore,
  KeyRing,
  TokenBroker,
  TokenVerifier
} from "@token-broker/core"
import type { DevIdp } from "@token-broker/dev-idp"
import { SecretList } from "@token-broker/secret-scan"
import { pendingConsentSecrets, storedGrantSecrets } from "@token-broker/secret-scan/store"
import { Effect, Layer, ManagedRuntime, Option, Redacted } from "effect"
import { type StoreSpec, storeLayer } from "../../src/StoreSpec.js"
import { PROVIDER, plainProvider, providerConfig } from "./provider.js"
import type { WorkerInit } from "./workerProtocol.js"

export { PROVIDER, plainProvider }

/** `count` dev-idp users with random passwords, for `startDevIdp({ users })`. */
export const benchUsers = (count: number) =>
  Array.from({ length: count }, (_, i) => ({
    sub: `u-bench-${String(i).padStart(2, "0")}`,
    username: `bench${i}`,
    password: randomBytes(12).toString("base64url")
  }))

export const keyOf = (subject: string): GrantKey => ({ tenant: "default", subject, provider: PROVIDER })

/**
 * The test process's own broker on the shared store: it provisions grants through the broker's own
 * consent flow (Flow 2 against dev-idp's login and consent pages) and inspects what the workers left in
 * the store. It shares the key ring with the workers.
 */
export interface Provisioner {
  /** The worker `init` for this store, provider and key ring. */
  readonly workerInit: (
    instanceId: string,
    lease: { ttlMs: number; waitMs: number },
    control?: WorkerInit["control"]
  ) => WorkerInit
  /** startAuthorization -> dev-idp login and consent -> completeAuthorization. */
  readonly connect: (user: { sub: string; username: string; password: string }) => Promise<void>
  /**
   * Moves the stored access token's expiry into the past (compare-and-set through the store, +1
   * version): the grant is then exactly as if its access token had run out, without waiting for it.
   */
  readonly expireAccessToken: (subject: string) => Promise<GrantRecord>
  readonly grant: (subject: string) => Promise<GrantRecord>
  /** Decrypts a record's secrets with the shared key ring; rejects with DecryptionFailed otherwise. */
  readonly decrypt: (
    record: GrantRecord
  ) => Promise<{ refreshToken: Redacted.Redacted<string>; accessToken: Redacted.Redacted<string> | null }>
  /**
   * The secrets this provisioner handled, for the chaos suite's secret scan: the client secret and key,
   * each consent's password, PKCE verifier, nonce, code and state, and what `rememberStored` adds.
   */
  readonly secrets: SecretList
  /** Adds every stored grant's refresh and access tokens (decrypted with the shared key ring) to `secrets`. */
  readonly rememberStored: () => Promise<void>
  readonly close: () => Promise<void>
}

export const startProvisioner = async (idp: DevIdp, spec: StoreSpec): Promise<Provisioner> => {
  const material = randomBytes(32).toString("base64")
  const keys = [{ kid: "bench", material }]
  const provider = plainProvider(idp)
  const keyRing = KeyRing.layerLocal({
    keys: [Effect.runSync(KeyRing.decodeKey("bench", Redacted.make(material)))]
  })
  const layer = TokenBroker.layer({ instanceId: "provisioner" }).pipe(
    Layer.provideMerge(
      Layer.mergeAll(
        storeLayer(spec),
        keyRing,
        AuthorizationServer.layer([providerConfig(provider)]),
        AccessTokenCache.layer(),
        TokenVerifier.layer({ issuers: [{ issuer: idp.issuer }], allowInsecureRequests: true })
      )
    )
  )
  const runtime = ManagedRuntime.make(layer)
  const run = <A, E>(
    effect: Effect.Effect<A, E, TokenBroker.TokenBroker | GrantStore.GrantStore | KeyRing.KeyRing>
  ) => runtime.runPromise(effect)
  const grant = (subject: string) =>
    run(
      Effect.flatMap(GrantStore.GrantStore, (store) => store.get(keyOf(subject))).pipe(
        Effect.map(Option.getOrThrowWith(() => new Error(`no grant stored for ${subject}`)))
      )
    )
  const secrets = new SecretList()
    .add(`client secret of ${provider.clientId}`, provider.clientSecret)
    .add("key bench", material)
    .add("key bench (bytes)", Buffer.from(material, "base64"))
  // build now: a store that cannot start fails here, not in the middle of a test
  await run(Effect.void)
  return {
    workerInit: (instanceId, lease, control) => ({
      store: spec,
      provider,
      keys,
      broker: { instanceId, leaseTtlMs: lease.ttlMs, leaseWaitMs: lease.waitMs },
      control
    }),
    connect: (user) =>
      run(
        Effect.gen(function* () {
          const broker = yield* TokenBroker.TokenBroker
          const started = yield* broker.startAuthorization({ subject: user.sub, provider: PROVIDER })
          secrets.add(`password of ${user.username}`, user.password)
          secrets.addAll(yield* pendingConsentSecrets(Redacted.value(started.state)))
          const callback = yield* Effect.promise(() =>
            idp.driveAuthorization(started.authorizationUrl, {
              username: user.username,
              password: user.password
            })
          )
          for (const name of ["code", "state"])
            secrets.add(`consent ${name}`, callback.searchParams.get(name) ?? "")
          yield* broker.completeAuthorization(callback)
        })
      ),
    expireAccessToken: (subject) =>
      run(
        Effect.gen(function* () {
          const store = yield* GrantStore.GrantStore
          const key = keyOf(subject)
          const current = Option.getOrThrow(yield* store.get(key))
          if (current.accessToken === null) throw new Error(`grant of ${subject} has no stored access token`)
          const now = Date.now()
          const next: GrantRecord = {
            ...current,
            version: current.version + 1,
            accessToken: { ...current.accessToken, expiresAt: now - 1_000 },
            updatedAt: now
          }
          if ((yield* store.compareAndSet(key, current.version, next)) !== "ok") {
            throw new Error(`grant of ${subject} changed while its access token was being expired`)
          }
          return next
        })
      ),
    grant,
    decrypt: (record) =>
      run(
        Effect.gen(function* () {
          const keyRing = yield* KeyRing.KeyRing
          const refreshToken = yield* keyRing.decrypt(
            record.refreshToken,
            KeyRing.aadFor(record, "refresh_token")
          )
          const accessToken =
            record.accessToken === null
              ? null
              : yield* keyRing.decrypt(record.accessToken.envelope, KeyRing.aadFor(record, "access_token"))
          return { refreshToken, accessToken }
        })
      ),
    secrets,
    rememberStored: async () => {
      secrets.addAll(await run(storedGrantSecrets))
    },
    close: () => runtime.dispose()
  }
}
