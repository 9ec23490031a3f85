import { randomBytes } from "node:crypto"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Redacted } from "effect"
import { KeyRing } from "../src/index.js"

const key = (kid: string) => ({ kid, key: Redacted.make(new Uint8Array(randomBytes(32))) })
const record = { tenant: "t", subject: "alice", provider: "nextcloud" }
const secret = Redacted.make("rt-secret-value-1234567890")

describe("KeyRing (local AES-256-GCM)", () => {
  it.effect("round-trips a secret and never writes it in plain text", () =>
    Effect.gen(function* () {
      const ring = yield* KeyRing.makeLocal({ keys: [key("k1")] })
      const aad = KeyRing.aadFor(record, "refresh_token")
      const envelope = yield* ring.encrypt(secret, aad)
      expect(envelope.startsWith("tb1.k1.")).toBe(true)
      expect(envelope).not.toContain("rt-secret-value")
      expect(Buffer.from(envelope.split(".")[3] ?? "", "base64url").toString("latin1")).not.toContain(
        "rt-secret"
      )
      expect(Redacted.value(yield* ring.decrypt(envelope, aad))).toBe("rt-secret-value-1234567890")
      // A fresh nonce every time.
      expect(yield* ring.encrypt(secret, aad)).not.toBe(envelope)
    })
  )

  it.effect("a ciphertext moved to another record or field fails to decrypt", () =>
    Effect.gen(function* () {
      const ring = yield* KeyRing.makeLocal({ keys: [key("k1")] })
      const envelope = yield* ring.encrypt(secret, KeyRing.aadFor(record, "refresh_token"))
      const otherSubject = yield* Effect.flip(
        ring.decrypt(envelope, KeyRing.aadFor({ ...record, subject: "mallory" }, "refresh_token"))
      )
      expect(otherSubject._tag).toBe("DecryptionFailed")
      expect(otherSubject.reason).toBe("authentication_failed")
      const otherField = yield* Effect.flip(ring.decrypt(envelope, KeyRing.aadFor(record, "access_token")))
      expect(otherField.code).toBe("decryption_failed")
    })
  )

  it.effect("tampering fails with DecryptionFailed, never garbage", () =>
    Effect.gen(function* () {
      const ring = yield* KeyRing.makeLocal({ keys: [key("k1")] })
      const aad = KeyRing.aadFor(record, "refresh_token")
      const envelope = yield* ring.encrypt(secret, aad)
      const parts = envelope.split(".")
      const body = Buffer.from(parts[3] ?? "", "base64url")
      body[0] = (body[0] ?? 0) ^ 1
      const tampered = [parts[0], parts[1], parts[2], body.toString("base64url")].join(".")
      expect((yield* Effect.flip(ring.decrypt(tampered, aad))).reason).toBe("authentication_failed")
      expect((yield* Effect.flip(ring.decrypt("not-an-envelope", aad))).reason).toBe("malformed")
      expect((yield* Effect.flip(ring.decrypt("tb1.k1.AAAA.AAAA", aad))).reason).toBe("malformed")
    })
  )

  it.effect("data under an old key still decrypts after a new current key is added", () =>
    Effect.gen(function* () {
      const k1 = key("k1")
      const old = yield* KeyRing.makeLocal({ keys: [k1] })
      const aad = KeyRing.aadFor(record, "refresh_token")
      const envelope = yield* old.encrypt(secret, aad)
      const rotated = yield* KeyRing.makeLocal({ keys: [k1, key("k2")] })
      expect(rotated.currentKid).toBe("k2")
      expect(Redacted.value(yield* rotated.decrypt(envelope, aad))).toBe(Redacted.value(secret))
      expect(rotated.kidOf(envelope)).toBe("k1")
      expect((yield* rotated.encrypt(secret, aad)).startsWith("tb1.k2.")).toBe(true)
      // Without the old key: a loud, typed failure naming the key id.
      const withoutOld = yield* KeyRing.makeLocal({ keys: [key("k2")] })
      const error = yield* Effect.flip(withoutOld.decrypt(envelope, aad))
      expect(error.reason).toBe("unknown_key")
      expect(error.kid).toBe("k1")
    })
  )

  it.effect("a key of the wrong length or a bad kid is a ConfigInvalid naming the field", () =>
    Effect.gen(function* () {
      const short = yield* KeyRing.decodeKey("k1", Redacted.make(Buffer.alloc(16).toString("base64"))).pipe(
        Effect.exit
      )
      expect(Exit.isFailure(short)).toBe(true)
      const bad = yield* Effect.flip(KeyRing.makeLocal({ keys: [{ ...key("k1"), kid: "bad kid!" }] }))
      expect(bad._tag).toBe("ConfigInvalid")
      const missing = yield* Effect.flip(KeyRing.makeLocal({ keys: [key("k1")], current: "k9" }))
      expect(missing.field).toBe("current")
      const none = yield* Effect.flip(KeyRing.makeLocal({ keys: [] }))
      expect(none.field).toBe("keys")
      const decoded = yield* KeyRing.decodeKey("k1", KeyRing.generateKeyMaterial())
      expect(Redacted.value(decoded.key).length).toBe(32)
    })
  )

  it("Redacted keys and envelopes do not leak through logging", () => {
    const k = key("k1")
    expect(String(k.key)).toBe("<redacted>")
    expect(JSON.stringify(k)).not.toMatch(/[0-9]{3}/)
  })
})
