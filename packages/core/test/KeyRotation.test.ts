import { randomBytes } from "node:crypto"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Option, Redacted } from "effect"
import { type GrantRecord, GrantStore, KeyRing, KeyRotation } from "../src/index.js"

const newKey = (kid: string) => ({ kid, key: Redacted.make(new Uint8Array(randomBytes(32))) })
const k1 = newKey("k1")
const k2 = newKey("k2")

const record = (subject: string, refreshToken: string, accessToken: string | null): GrantRecord => ({
  tenant: "t",
  subject,
  provider: "p",
  version: 1,
  status: "active",
  refreshToken,
  accessToken:
    accessToken === null ? null : { envelope: accessToken, expiresAt: 1, scopes: ["a"], audience: null },
  scopes: ["a"],
  refreshTokenExpiresAt: null,
  identity: null,
  createdAt: 0,
  updatedAt: 0,
  lastRefreshedAt: null,
  lastUsedAt: null,
  failureCount: 0,
  lastErrorCode: null,
  refreshStartedAt: null
})

/** Stores `count` grants encrypted under `keys`' current key; returns the plain refresh tokens. */
const seed = (count: number) =>
  Effect.gen(function* () {
    const ring = yield* KeyRing.makeLocal({ keys: [k1] })
    const store = yield* GrantStore.GrantStore
    const plain = new Map<string, string>()
    for (let i = 0; i < count; i++) {
      const subject = `user-${String(i).padStart(4, "0")}`
      const key = { tenant: "t", subject, provider: "p" }
      const rt = `rt-${randomBytes(8).toString("hex")}`
      plain.set(subject, rt)
      const envelope = yield* ring.encrypt(Redacted.make(rt), KeyRing.aadFor(key, "refresh_token"))
      const at =
        i % 2 === 0
          ? yield* ring.encrypt(Redacted.make(`at-${i}`), KeyRing.aadFor(key, "access_token"))
          : null
      expect(yield* store.insert(record(subject, envelope, at))).toBe("ok")
    }
    return plain
  })

describe("KeyRotation.reencryptAll", () => {
  it.effect("re-encrypts every grant under the new key: readable with only the new key", () =>
    Effect.gen(function* () {
      const plain = yield* seed(25)
      const rotated = KeyRing.layerLocal({ keys: [k1, k2], current: "k2" })
      const progress: Array<number> = []
      const result = yield* KeyRotation.reencryptAll({
        pageSize: 10,
        onProgress: (p) => Effect.sync(() => progress.push(p.scanned))
      }).pipe(Effect.provide(rotated))
      expect(result).toMatchObject({ scanned: 25, reencrypted: 25, current: 0, failed: 0, kidsInUse: ["k2"] })
      expect(progress).toEqual([10, 20, 25])
      // Only the new key: every grant still decrypts to the same refresh token.
      const onlyNew = yield* KeyRing.makeLocal({ keys: [k2] })
      const store = yield* GrantStore.GrantStore
      for (const [subject, rt] of plain) {
        const stored = Option.getOrThrow(yield* store.get({ tenant: "t", subject, provider: "p" }))
        expect(stored.version).toBe(2)
        const decrypted = yield* onlyNew.decrypt(stored.refreshToken, KeyRing.aadFor(stored, "refresh_token"))
        expect(Redacted.value(decrypted)).toBe(rt)
        if (stored.accessToken !== null) {
          yield* onlyNew.decrypt(stored.accessToken.envelope, KeyRing.aadFor(stored, "access_token"))
        }
      }
      // A second run is a no-op.
      const again = yield* KeyRotation.reencryptAll().pipe(Effect.provide(rotated))
      expect(again).toMatchObject({ scanned: 25, reencrypted: 0, current: 25 })
    }).pipe(Effect.provide(GrantStore.layerMemory))
  )

  it.effect("a dry run writes nothing and reports the old key as still in use", () =>
    Effect.gen(function* () {
      yield* seed(5)
      const result = yield* KeyRotation.reencryptAll({ dryRun: true }).pipe(
        Effect.provide(KeyRing.layerLocal({ keys: [k1, k2], current: "k2" }))
      )
      expect(result).toMatchObject({ scanned: 5, reencrypted: 5, kidsInUse: ["k1"] })
      const store = yield* GrantStore.GrantStore
      const stored = Option.getOrThrow(yield* store.get({ tenant: "t", subject: "user-0000", provider: "p" }))
      expect(stored.version).toBe(1)
    }).pipe(Effect.provide(GrantStore.layerMemory))
  )

  it.effect("an interrupted run resumes: the second run finishes the rest and loses nothing", () =>
    Effect.gen(function* () {
      const plain = yield* seed(30)
      const rotated = KeyRing.layerLocal({ keys: [k1, k2], current: "k2" })
      // Stop after the first page.
      const first = yield* KeyRotation.reencryptAll({
        pageSize: 10,
        onProgress: (p) => (p.scanned >= 10 ? Effect.interrupt : Effect.void)
      }).pipe(Effect.provide(rotated), Effect.exit)
      expect(first._tag).toBe("Failure")
      const second = yield* KeyRotation.reencryptAll({ pageSize: 10 }).pipe(Effect.provide(rotated))
      expect(second).toMatchObject({ scanned: 30, reencrypted: 20, current: 10, kidsInUse: ["k2"] })
      const onlyNew = yield* KeyRing.makeLocal({ keys: [k2] })
      const store = yield* GrantStore.GrantStore
      for (const [subject, rt] of plain) {
        const stored = Option.getOrThrow(yield* store.get({ tenant: "t", subject, provider: "p" }))
        const decrypted = yield* onlyNew.decrypt(stored.refreshToken, KeyRing.aadFor(stored, "refresh_token"))
        expect(Redacted.value(decrypted)).toBe(rt)
      }
    }).pipe(Effect.provide(GrantStore.layerMemory))
  )

  it.effect("a grant that does not decrypt is reported and left untouched", () =>
    Effect.gen(function* () {
      yield* seed(3)
      const store = yield* GrantStore.GrantStore
      const foreign = yield* KeyRing.makeLocal({ keys: [newKey("k1")] })
      const bad = yield* foreign.encrypt(
        Redacted.make("x"),
        KeyRing.aadFor({ tenant: "t", subject: "zz", provider: "p" }, "refresh_token")
      )
      yield* store.insert(record("zz", bad, null))
      const result = yield* KeyRotation.reencryptAll().pipe(
        Effect.provide(KeyRing.layerLocal({ keys: [k1, k2], current: "k2" }))
      )
      expect(result.failed).toBe(1)
      expect(result.failures[0]?.key.subject).toBe("zz")
      expect(result.failures[0]?.error._tag).toBe("DecryptionFailed")
      expect(result.kidsInUse).toEqual(["k1", "k2"])
      const untouched = Option.getOrThrow(yield* store.get({ tenant: "t", subject: "zz", provider: "p" }))
      expect(untouched.refreshToken).toBe(bad)
    }).pipe(Effect.provide(GrantStore.layerMemory))
  )
})
