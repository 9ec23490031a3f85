import { randomBytes } from "node:crypto"
import { afterAll, afterEach, beforeAll, expect } from "@effect/vitest"
import { type DevIdp, type DevIdpOptions, startDevIdp } from "@token-broker/dev-idp"
import { Clock, Duration, Effect, HashMap, Layer, Logger, Option, Redacted, TestClock } from "effect"
import {
  AccessTokenCache,
  AuthorizationServer,
  type GrantKey,
  GrantStore,
  KeyRing,
  type ProviderConfig,
  TokenBroker,
  TokenVerifier
} from "../../src/index.js"

export const PROVIDER = "notes"

/** The provider config of dev-idp's confidential `token-broker` client for the notes API. */
export const providerConfig = (idp: DevIdp, overrides: Partial<ProviderConfig> = {}): ProviderConfig => {
  const client = idp.client("token-broker")
  return {
    id: PROVIDER,
    issuer: idp.issuer,
    clientId: client.clientId,
    clientAuthentication: {
      method: "client_secret_basic",
      clientSecret: Redacted.make(client.clientSecret ?? "")
    },
    redirectUri: `${idp.issuer}/__dev/callback`,
    defaultScopes: ["notes:read", "notes:write"],
    resource: idp.notesAudience,
    allowInsecureRequests: true,
    requestTimeout: "5 seconds",
    tokenExchange: {},
    ...overrides
  }
}

/** A key ring with one fresh random key; the layer is memoized, so brokers given the same value share it. */
export const newKeyRingLayer = () =>
  Layer.succeed(
    KeyRing.KeyRing,
    Effect.runSync(
      KeyRing.makeLocal({ keys: [{ kid: "k1", key: Redacted.make(new Uint8Array(randomBytes(32))) }] })
    )
  )

/** One memory store instance as a layer, so several brokers can share it. */
export const sharedMemoryStore = () =>
  Layer.succeed(GrantStore.GrantStore, Effect.runSync(GrantStore.makeMemory))

/** A store instance the test holds (to read it, or to wrap some of its methods with faults). */
export type Store = Effect.Effect.Success<typeof GrantStore.makeMemory>

/** `store` as the layer a broker reads. */
export const storeLayer = (store: Store) => Layer.succeed(GrantStore.GrantStore, store)

/** The key of `subject`'s grant in the default tenant (of the test provider unless named). */
export const grantKey = (subject: string, provider: string = PROVIDER): GrantKey => ({
  tenant: "default",
  subject,
  provider
})

export interface BrokerSetup {
  readonly store?: Layer.Layer<GrantStore.GrantStore> | undefined
  readonly keyRing?: Layer.Layer<KeyRing.KeyRing, unknown> | undefined
  readonly provider?: Partial<ProviderConfig> | undefined
  readonly authorizationServers?: Layer.Layer<AuthorizationServer.AuthorizationServers> | undefined
  readonly broker?: TokenBroker.TokenBrokerOptions | undefined
}

/** Every service a TokenBroker needs, against a running dev-idp. */
export const brokerLayer = (idp: DevIdp, setup: BrokerSetup = {}) =>
  TokenBroker.layer({ sessionAudience: idp.mcpAudience ?? "urn:unused", ...setup.broker }).pipe(
    Layer.provideMerge(
      Layer.mergeAll(
        setup.store ?? GrantStore.layerMemory,
        setup.keyRing ?? newKeyRingLayer(),
        setup.authorizationServers ?? AuthorizationServer.layer([providerConfig(idp, setup.provider)]),
        AccessTokenCache.layer(),
        TokenVerifier.layer({ issuers: [{ issuer: idp.issuer }], allowInsecureRequests: true })
      )
    ),
    Layer.orDie
  )

export const user = (idp: DevIdp, index = 0) => {
  const found = idp.users[index]
  if (found === undefined) throw new Error("dev-idp has no such user")
  return found
}

export type User = ReturnType<typeof user>

/** dev-idp's login and consent pages answered as `login` (consent denied with `allow: false`). */
export const driveAs = (idp: DevIdp, authorizationUrl: URL, login: User, allow = true) =>
  Effect.promise(() =>
    idp.driveAuthorization(authorizationUrl, {
      username: login.username,
      password: login.password,
      ...(allow ? {} : { consent: false })
    })
  )

/**
 * The first half of Flow 2: the broker's authorization URL for `subject`, answered at dev-idp as `login`.
 * Returns the broker, the started authorization and the callback to complete it with.
 */
export const authorize = (
  idp: DevIdp,
  subject: string,
  login: User,
  options: { readonly scopes?: ReadonlyArray<string> | undefined; readonly allow?: boolean } = {}
) =>
  Effect.gen(function* () {
    const broker = yield* TokenBroker.TokenBroker
    const started = yield* broker.startAuthorization({ subject, provider: PROVIDER, scopes: options.scopes })
    const callback = yield* driveAs(idp, started.authorizationUrl, login, options.allow)
    return { broker, started, callback }
  })

/**
 * Bob starts consent for his subject, but Alice's account answers at the provider: the completion must
 * fail IdentityMismatch and store nothing for Bob. Returns both users and the error, for the test's
 * own checks of what the error names.
 */
export const consentAsAnotherAccount = (idp: DevIdp) =>
  Effect.gen(function* () {
    const alice = user(idp)
    const bob = user(idp, 1)
    const { broker, callback } = yield* authorize(idp, bob.sub, alice)
    const error = yield* Effect.flip(broker.completeAuthorization(callback))
    expect(error._tag).toBe("IdentityMismatch")
    expect(Option.isNone(yield* broker.grantStatus({ subject: bob.sub, provider: PROVIDER }))).toBe(true)
    return { alice, bob, error }
  })

/** Flow 2 through the broker: authorization URL -> dev-idp's login/consent pages -> callback. */
export const connect = (idp: DevIdp, who = user(idp), scopes?: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    const { broker, callback } = yield* authorize(idp, who.sub, who, { scopes })
    return yield* broker.completeAuthorization(callback)
  })

/**
 * A broker with a connected grant: `who` connects through the broker in context. With `expire`, the
 * TestClock then moves past the first access token's expiry, so the next call refreshes. `ref` names
 * the grant in the broker's calls.
 */
/**
 * Connects `who` (consent through dev-idp). `expire`: the TestClock moves 10 minutes on. `due` (real
 * time): returns only once the clock is past the instant the grant's token arrived. A token whose
 * early-refresh margin is its whole life (`earlyRefreshShare: 1`) is due from then on; in the same
 * millisecond it is not yet (its life left equals the margin), which a fast machine reaches.
 */
export const connected = (
  idp: DevIdp,
  who: User,
  options: { readonly expire?: boolean; readonly due?: boolean } = {}
) =>
  Effect.gen(function* () {
    const completed = yield* connect(idp, who)
    const broker = yield* TokenBroker.TokenBroker
    const ref = { subject: who.sub, provider: PROVIDER }
    if (options.expire === true) yield* TestClock.adjust("10 minutes")
    if (options.due === true) {
      const arrived = Option.getOrThrow(yield* broker.grantStatus(ref)).lastRefreshedAt ?? 0
      const now = yield* Clock.currentTimeMillis
      if (now <= arrived) yield* Effect.sleep(Duration.millis(arrived + 1 - now))
    }
    return { broker, completed, ref }
  })

/** Refresh requests dev-idp answered since its counters were last reset. */
export const refreshRequests = (idp: DevIdp) => idp.counters.count({ grantType: "refresh_token" })

/** The next call must refresh: the current token is reported refused upstream, so the broker drops it. */
export const dropCurrent = (subject: string) =>
  Effect.gen(function* () {
    const broker = yield* TokenBroker.TokenBroker
    const current = yield* broker.backgroundToken({ subject, provider: PROVIDER })
    yield* broker.reportRejected({ subject, provider: PROVIDER, accessToken: current.accessToken })
  })

/** The refresh token stored for `subject`, decrypted (for assertions in test memory only). */
export const storedRefreshToken = (subject: string) =>
  Effect.gen(function* () {
    const store = yield* GrantStore.GrantStore
    const keyRing = yield* KeyRing.KeyRing
    const record = Option.getOrThrow(yield* store.get(grantKey(subject)))
    return Redacted.value(
      yield* keyRing.decrypt(record.refreshToken, KeyRing.aadFor(record, "refresh_token"))
    )
  })

/** A dev-idp started before the tests of the file (or describe block) that calls this, closed after. */
export const useDevIdp = (options: DevIdpOptions = {}) => {
  const dev = withDevIdp(options)
  beforeAll(dev.start)
  // a fault a test injected but did not use up never reaches the next test's requests
  afterEach(() => dev.idp.faults.clear())
  afterAll(dev.stop)
  return dev
}

export const withDevIdp = (options: DevIdpOptions = {}) => {
  const state: { idp: DevIdp | undefined } = { idp: undefined }
  return {
    start: async () => {
      state.idp = await startDevIdp({ mcpAudience: "http://127.0.0.1/mcp", ...options })
    },
    stop: async () => {
      await state.idp?.close()
    },
    get idp(): DevIdp {
      if (state.idp === undefined) throw new Error("dev-idp is not started")
      return state.idp
    }
  }
}

/** The JWT payload (no verification: for assertions on tokens the test obtained itself). */
export const claims = (token: Redacted.Redacted<string> | string) => {
  const text = typeof token === "string" ? token : Redacted.value(token)
  const payload = text.split(".")[1] ?? ""
  return JSON.parse(Buffer.from(payload, "base64url").toString("utf8")) as Record<string, unknown>
}

/** A log line as a test sees it: level, message and annotations. */
export interface Line {
  readonly level: string
  readonly message: string
  readonly annotations: Record<string, unknown>
}

/** A logger layer that appends every log line of the effect, with its annotations, to `lines`. */
export const capturing = (lines: Array<Line>) =>
  Logger.replace(
    Logger.defaultLogger,
    Logger.make(({ logLevel, message, annotations }) => {
      lines.push({
        level: logLevel.label,
        message: Array.isArray(message) ? message.map(String).join(" ") : String(message),
        annotations: Object.fromEntries(HashMap.toEntries(annotations))
      })
    })
  )
