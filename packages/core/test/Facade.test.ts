import { randomBytes } from "node:crypto"
import { Redacted } from "effect"
import { describe, expect, it } from "vitest"
import { createTokenBroker, GrantStore, KeyRing } from "../src/index.js"
import { PROVIDER, providerConfig, useDevIdp, user } from "./support/harness.js"

const dev = useDevIdp()

const newBroker = () =>
  createTokenBroker({
    store: GrantStore.layerMemory,
    keyRing: KeyRing.layerLocal({
      keys: [{ kid: "k1", key: Redacted.make(new Uint8Array(randomBytes(32))) }]
    }),
    providers: [providerConfig(dev.idp)]
  })

describe("createTokenBroker: the Promise facade", () => {
  it("connects, serves tokens as plain strings, and rejects with the typed errors themselves", async () => {
    const broker = await newBroker()
    try {
      const alice = user(dev.idp)
      const missing = await broker
        .backgroundToken({ subject: alice.sub, provider: PROVIDER })
        .catch((e: unknown) => e)
      expect(missing).toBeInstanceOf(Error)
      expect(missing).toMatchObject({ _tag: "ConsentRequired", code: "consent_required", reason: "no_grant" })

      const { authorizationUrl } = await broker.startAuthorization({ subject: alice.sub, provider: PROVIDER })
      const callback = await dev.idp.driveAuthorization(authorizationUrl, {
        username: alice.username,
        password: alice.password
      })
      const completed = await broker.completeAuthorization(callback)
      expect(completed.grant.subject).toBe(alice.sub)

      const token = await broker.backgroundToken({
        subject: alice.sub,
        provider: PROVIDER,
        scopes: ["notes:read"]
      })
      expect(typeof token.accessToken).toBe("string")
      expect(token.accessToken.split(".")).toHaveLength(3)
      const notes = await fetch(`${dev.idp.notesApiUrl}/notes`, {
        headers: { authorization: `Bearer ${token.accessToken}` }
      })
      expect(notes.status).toBe(200)

      const status = await broker.grantStatus({ subject: alice.sub, provider: PROVIDER })
      expect(status?.status).toBe("active")
      const page = await broker.listGrants({ limit: 10 })
      expect(page.items.map((g) => g.subject)).toEqual([alice.sub])
      const badCursor = await broker.listGrants({ cursor: "garbage" }).catch((e: unknown) => e)
      expect(badCursor).toMatchObject({ _tag: "InvalidRequest", field: "cursor" })

      const rotated = await broker.rotateRefreshToken({ subject: alice.sub, provider: PROVIDER })
      expect(rotated.version).toBeGreaterThan(completed.grant.version)

      const session = await broker
        .sessionToken({ subjectToken: token.accessToken, provider: PROVIDER })
        .catch((e: unknown) => e)
      expect(session).toMatchObject({ _tag: "InvalidSubjectToken", reason: "unverifiable" })

      expect(await broker.revoke({ subject: alice.sub, provider: PROVIDER })).toEqual({
        removed: true,
        upstream: "revoked",
        accessTokens: "not_supported",
        revokedAtProvider: { refreshToken: true, accessTokens: 0 }
      })
      expect(await broker.grantStatus({ subject: alice.sub, provider: PROVIDER })).toBeUndefined()
    } finally {
      await broker.close()
    }
  })
})
