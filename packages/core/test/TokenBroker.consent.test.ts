import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Option, Redacted, TestClock } from "effect"
import { AuthorizationServer, GrantStore, KeyRing, StorageUnavailable, TokenBroker } from "../src/index.js"
import {
  authorize,
  brokerLayer,
  connect,
  connected,
  consentAsAnotherAccount,
  driveAs,
  grantKey,
  PROVIDER,
  type Store,
  storedRefreshToken,
  storeLayer,
  type User,
  useDevIdp,
  user,
  withDevIdp
} from "./support/harness.js"

const dev = useDevIdp()

describe("consent (Flow 2): authorization code + PKCE, stored in the grant store", () => {
  it.effect("the authorization URL carries PKCE S256, state, nonce and prompt=consent", () =>
    Effect.gen(function* () {
      const broker = yield* TokenBroker.TokenBroker
      const started = yield* broker.startAuthorization({ subject: user(dev.idp).sub, provider: PROVIDER })
      const params = started.authorizationUrl.searchParams
      expect(started.authorizationUrl.origin).toBe(dev.idp.issuer)
      expect(params.get("response_type")).toBe("code")
      expect(params.get("code_challenge_method")).toBe("S256")
      expect(params.get("code_challenge")).toMatch(/^[A-Za-z0-9_-]{43}$/)
      expect(params.get("state")).toBe(Redacted.value(started.state))
      expect(params.get("nonce")?.length).toBeGreaterThanOrEqual(32)
      expect(params.get("prompt")).toBe("consent")
      expect(params.get("scope")?.split(" ")).toEqual(
        expect.arrayContaining(["openid", "offline_access", "notes:read", "notes:write"])
      )
      expect(params.get("resource")).toBe(dev.idp.notesAudience)
      expect(params.get("client_id")).toBe("token-broker")
    }).pipe(Effect.provide(brokerLayer(dev.idp)))
  )

  it.live("completing it through dev-idp stores an encrypted grant that serves tokens", () =>
    Effect.gen(function* () {
      const alice = user(dev.idp)
      const completed = yield* connect(dev.idp, alice)
      expect(completed.grant.status).toBe("active")
      expect(completed.grant.identity).toEqual({ issuer: dev.idp.issuer, subject: alice.sub })
      expect(completed.grant.refreshTokenExpiresAt).toBeGreaterThan(Date.now())
      const broker = yield* TokenBroker.TokenBroker
      const token = yield* broker.backgroundToken({ subject: alice.sub, provider: PROVIDER })
      expect(token.source).toBe("store")
      // Nothing in plain text: the stored record holds envelopes only.
      const store = yield* GrantStore.GrantStore
      const record = Option.getOrThrow(yield* store.get(grantKey(alice.sub)))
      const raw = JSON.stringify(record)
      expect(raw).not.toContain(Redacted.value(token.accessToken))
      expect(record.refreshToken.startsWith("tb1.")).toBe(true)
      expect(record.accessToken?.envelope.startsWith("tb1.")).toBe(true)
      // A record copied to another subject does not decrypt.
      const keyRing = yield* KeyRing.KeyRing
      const moved = yield* Effect.flip(
        keyRing.decrypt(
          record.refreshToken,
          KeyRing.aadFor({ ...record, subject: "mallory" }, "refresh_token")
        )
      )
      expect(moved._tag).toBe("DecryptionFailed")
    }).pipe(Effect.provide(brokerLayer(dev.idp)))
  )

  it.live("a reused state is refused", () =>
    Effect.gen(function* () {
      const alice = user(dev.idp)
      const { broker, callback } = yield* authorize(dev.idp, alice.sub, alice)
      yield* broker.completeAuthorization(callback)
      const replay = yield* Effect.flip(broker.completeAuthorization(callback))
      expect(replay._tag).toBe("AuthorizationNotPending")
      const missing = yield* Effect.flip(broker.completeAuthorization({ code: "x" }))
      expect(missing._tag).toBe("AuthorizationNotPending")
      const unknown = yield* Effect.flip(broker.completeAuthorization({ code: "x", state: "forged" }))
      expect(unknown._tag).toBe("AuthorizationNotPending")
    }).pipe(Effect.provide(brokerLayer(dev.idp)))
  )

  it.effect("an expired state is refused", () =>
    Effect.gen(function* () {
      const alice = user(dev.idp)
      const { broker, callback } = yield* authorize(dev.idp, alice.sub, alice)
      yield* TestClock.adjust("11 minutes")
      const error = yield* Effect.flip(broker.completeAuthorization(callback))
      expect(error._tag).toBe("AuthorizationNotPending")
    }).pipe(Effect.provide(brokerLayer(dev.idp)))
  )

  it.live("an identity that may not be bound to the subject is refused, and nothing is stored", () =>
    consentAsAnotherAccount(dev.idp).pipe(Effect.provide(brokerLayer(dev.idp)))
  )

  it.live("a denied consent is reported with the provider's error", () =>
    Effect.gen(function* () {
      const alice = user(dev.idp)
      const { broker, started, callback } = yield* authorize(dev.idp, alice.sub, alice, { allow: false })
      const error = yield* Effect.flip(broker.completeAuthorization(callback))
      expect(error._tag === "UpstreamRejected" && error.error).toBe("access_denied")
      // an error answer does not use up the consent: the user goes back, allows, and it completes
      // (and a link carrying an error cannot cancel someone's consent in progress)
      const allowed = yield* driveAs(dev.idp, started.authorizationUrl, alice)
      const completed = yield* broker.completeAuthorization(allowed)
      expect(completed.grant.status).toBe("active")
      // once completed, the state is used up
      const again = yield* Effect.flip(broker.completeAuthorization(callback))
      expect(again._tag).toBe("AuthorizationNotPending")
    }).pipe(Effect.provide(brokerLayer(dev.idp)))
  )
})

type GrantRef = { readonly subject: string; readonly provider: string }

/** Tokens of the grant for its full scope and for notes:read alone, each cached apart. */
const fullAndNarrow = (broker: TokenBroker.TokenBrokerService, ref: GrantRef) =>
  Effect.all([broker.backgroundToken(ref), broker.backgroundToken({ ...ref, scopes: ["notes:read"] })])

/** Revokes the grant: the broker's answer, and the revocation requests dev-idp received for it. */
const revokeRecorded = (broker: TokenBroker.TokenBrokerService, ref: GrantRef) =>
  Effect.gen(function* () {
    const before = dev.idp.revocations.list().length
    const result = yield* broker.revoke(ref)
    return { result, recorded: dev.idp.revocations.list().slice(before) }
  })

describe("revocation (RFC 7009)", () => {
  it.live(
    "revokes at dev-idp with client authentication; the grant and every cached token of it are gone",
    () =>
      Effect.gen(function* () {
        const { broker, ref } = yield* connected(dev.idp, user(dev.idp))
        yield* fullAndNarrow(broker, ref)
        const { result, recorded } = yield* revokeRecorded(broker, ref)
        // dev-idp cannot revoke its JWT access tokens (unsupported_token_type): the answer says so
        expect(result).toEqual({
          removed: true,
          upstream: "revoked",
          accessTokens: "not_supported",
          revokedAtProvider: { refreshToken: true, accessTokens: 0 }
        })
        expect(recorded).toHaveLength(1)
        expect(recorded[0]).toMatchObject({ clientId: "token-broker", tokenTypeHint: "refresh_token" })
        for (const scopes of [undefined, ["notes:read"]]) {
          const error = yield* Effect.flip(broker.backgroundToken({ ...ref, scopes }))
          expect(error._tag === "ConsentRequired" && error.reason).toBe("no_grant")
        }
        expect(yield* broker.revoke(ref)).toEqual({
          removed: false,
          upstream: "not_attempted",
          accessTokens: "not_attempted",
          revokedAtProvider: { refreshToken: false, accessTokens: 0 }
        })
      }).pipe(Effect.provide(brokerLayer(dev.idp)))
  )
})

describe("revocation of the current access tokens too (token_type_hint=access_token)", () => {
  it.live("opaque access tokens: each current one is revoked, and the answer counts them", () =>
    Effect.gen(function* () {
      const { broker, ref } = yield* connected(dev.idp, user(dev.idp))
      const servers = yield* AuthorizationServer.AuthorizationServers
      const client = yield* servers.get(PROVIDER)
      const tokens = yield* fullAndNarrow(broker, ref)
      for (const token of tokens) expect((yield* client.introspect(token.accessToken)).active).toBe(true)
      const { result, recorded } = yield* revokeRecorded(broker, ref)
      expect(result).toEqual({
        removed: true,
        upstream: "revoked",
        accessTokens: "revoked",
        revokedAtProvider: { refreshToken: true, accessTokens: 2 }
      })
      expect(recorded.map((r) => r.tokenTypeHint)).toEqual(["refresh_token", "access_token", "access_token"])
      // neither keeps working until it expires
      for (const token of tokens) expect((yield* client.introspect(token.accessToken)).active).toBe(false)
    }).pipe(Effect.provide(brokerLayer(dev.idp, { provider: { resource: dev.idp.opaqueAudience } })))
  )
})

describe("re-consent after revocation (case 10)", () => {
  it.live("the new grant's versions start above the revoked one's: a stale version never comes back", () =>
    Effect.gen(function* () {
      const alice = user(dev.idp, 1)
      const { broker, ref } = yield* connected(dev.idp, alice)
      yield* broker.rotateRefreshToken(ref)
      const before = yield* broker.grantStatus(ref)
      const old = Option.getOrThrow(before).version
      expect(old).toBeGreaterThan(1)
      expect((yield* broker.revoke(ref)).removed).toBe(true)
      const again = yield* connect(dev.idp, alice)
      expect(again.grant.version).toBeGreaterThan(old)
      const stored = yield* broker.grantStatus(ref)
      expect(Option.map(stored, (g) => g.version)).toEqual(Option.some(again.grant.version))
    }).pipe(Effect.provide(brokerLayer(dev.idp)))
  )
})

describe("revocation with the provider down", () => {
  const down = withDevIdp()
  beforeAll(down.start)

  it.live("the grant is still removed locally and the failure is reported", () =>
    Effect.gen(function* () {
      const { broker, ref } = yield* connected(down.idp, user(down.idp))
      yield* Effect.promise(() => down.idp.close())
      const result = yield* broker.revoke(ref)
      expect(result.removed).toBe(true)
      expect(result.upstream).toBe("failed")
      expect(result.upstreamError?.code).toBe("network")
      expect(Option.isNone(yield* broker.grantStatus(ref))).toBe(true)
    }).pipe(Effect.provide(Layer.suspend(() => brokerLayer(down.idp))))
  )
})

describe("a consent over an active grant (replacedGrants)", () => {
  const idp = withDevIdp()
  beforeAll(idp.start)
  afterAll(idp.stop)
  const live = (who: User) => idp.idp.liveRefreshTokens({ subject: who.sub, clientId: "token-broker" })

  it.live("revoke (default): the replaced grant is revoked at the provider once the new one is stored", () =>
    Effect.gen(function* () {
      const alice = user(idp.idp)
      const before = live(alice)
      const { broker, ref } = yield* connected(idp.idp, alice)
      expect(live(alice)).toBe(before + 1)
      const replacedToken = yield* storedRefreshToken(alice.sub)
      idp.idp.revocations.clear()
      yield* connect(idp.idp, alice)
      // the new grant only: the replaced refresh token would no longer refresh
      expect(live(alice)).toBe(before + 1)
      expect(idp.idp.revocations.list().map((r) => r.tokenTypeHint)).toContain("refresh_token")
      expect(yield* storedRefreshToken(alice.sub)).not.toBe(replacedToken)
      yield* broker.rotateRefreshToken(ref)
    }).pipe(Effect.provide(Layer.suspend(() => brokerLayer(idp.idp))))
  )

  it.live("keep: the replaced grant is left live at the provider", () =>
    Effect.gen(function* () {
      const bob = user(idp.idp, 1)
      const before = live(bob)
      yield* connect(idp.idp, bob)
      yield* connect(idp.idp, bob)
      expect(live(bob)).toBe(before + 2)
    }).pipe(
      Effect.provide(Layer.suspend(() => brokerLayer(idp.idp, { provider: { replacedGrants: "keep" } })))
    )
  )

  const down = (operation: string, message = "the store is down") =>
    new StorageUnavailable({ operation, message })

  /** Stores that fail a consent's write, each with whether what the provider issued must be revoked. */
  const storeFaults: ReadonlyArray<{
    readonly name: string
    readonly faulty: (memory: Store) => Partial<Store>
    readonly revoked: boolean
  }> = [
    {
      name: "a store that refuses to hold the new grant: what the provider issued is revoked, and the error says so",
      faulty: () => ({
        insert: () => Effect.fail(down("insert")),
        compareAndSet: () => Effect.fail(down("cas"))
      }),
      revoked: true
    },
    {
      // every read of a grant fails (the pending authorization is still taken)
      name: "a store that fails before any write is sent: what the provider issued is revoked",
      faulty: () => ({ get: () => Effect.fail(down("get")) }),
      revoked: true
    },
    {
      name: "a write whose answer was lost but which landed: nothing is revoked, the stored grant refreshes",
      faulty: (memory) => ({
        insert: (record) =>
          Effect.zipRight(memory.insert(record), Effect.fail(down("insert", "lost after commit")))
      }),
      revoked: false
    }
  ]

  for (const { name, faulty, revoked } of storeFaults)
    it.live(name, () =>
      Effect.gen(function* () {
        const who = user(idp.idp, revoked ? 0 : 1)
        const memory = yield* GrantStore.makeMemory
        const store: Store = { ...memory, ...faulty(memory) }
        const before = live(who)
        yield* Effect.gen(function* () {
          const error = yield* Effect.flip(connect(idp.idp, who))
          expect(error._tag).toBe("StorageUnavailable")
          if (revoked) {
            expect(error.message).toMatch(/the new grant was not stored, and its refresh token was revoked/)
            expect(live(who)).toBe(before)
          } else {
            expect(error.message).not.toMatch(/revoked/)
            expect(live(who)).toBe(before + 1)
            const broker = yield* TokenBroker.TokenBroker
            yield* broker.rotateRefreshToken({ subject: who.sub, provider: PROVIDER })
          }
        }).pipe(Effect.provide(brokerLayer(idp.idp, { store: storeLayer(store) })))
      })
    )
})
