import { randomBytes } from "node:crypto"
import { type DevIdp, type DevIdpOptions, startDevIdp } from "@token-broker/dev-idp"
import { Effect, HashMap, Layer, Logger, Redacted } from "effect"
import {
  AccessTokenCache,
  AuthorizationServer,
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

/** Flow 2 through the broker: authorization URL -> dev-idp's login/consent pages -> callback. */
export const connect = (idp: DevIdp, who = user(idp), scopes?: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    const broker = yield* TokenBroker.TokenBroker
    const started = yield* broker.startAuthorization({ subject: who.sub, provider: PROVIDER, scopes })
    const callback = yield* Effect.promise(() =>
      idp.driveAuthorization(started.authorizationUrl, { username: who.username, password: who.password })
    )
    return yield* broker.completeAuthorization(callback)
  })

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
