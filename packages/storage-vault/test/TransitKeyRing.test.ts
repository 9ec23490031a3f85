import { describe, expect, it } from "@effect/vitest"
import { type DecryptionFailed, KeyRing, type StorageUnavailable } from "@token-broker/core"
import { Effect, Layer, Redacted } from "effect"
import { afterAll } from "vitest"
import { TransitKeyRing, type VaultError, type VaultErrorReason } from "../src/index.js"
import { startVaultEmulator, type TransportFault } from "../src/testing/index.js"
import { transitPolicy } from "./support.js"

const emulator = await startVaultEmulator()
afterAll(() => emulator.close())

let n = 0
const freshKeyName = (derived = true) => {
  const name = `tb-${n++}`
  emulator.createTransitKey(name, { derived })
  return name
}
const aad = (subject: string, field = "refreshToken") =>
  KeyRing.aadFor({ tenant: "acme", subject, provider: "nextcloud" }, field)

const ring = (key: string, token = emulator.createToken({ policy: transitPolicy("transit", key) })) =>
  TransitKeyRing.layer({ address: emulator.address, auth: { token }, key, retries: 0 })

/** The error as a DecryptionFailed (fails the test when it is another error). */
const failed = (error: DecryptionFailed | StorageUnavailable): DecryptionFailed => {
  expect(error._tag).toBe("DecryptionFailed")
  return error as DecryptionFailed
}

const withRing = <A, E>(
  layer: Layer.Layer<TransitKeyRing.TransitKeyRing | KeyRing.KeyRing, unknown>,
  use: (r: TransitKeyRing.TransitKeyRingService) => Effect.Effect<A, E>
) => Effect.flatMap(TransitKeyRing.TransitKeyRing, use).pipe(Effect.provide(layer))

/** Rotates a Transit key the way an operator does (`vault write -f transit/keys/<key>/rotate`). */
const vault = (path: string, body: unknown = {}) =>
  Effect.promise(() =>
    fetch(`${emulator.address}/v1/${path}`, {
      method: "POST",
      headers: { "X-Vault-Token": emulator.rootToken, "Content-Type": "application/json" },
      body: JSON.stringify(body)
    }).then((r) => r.status)
  )

describe("TransitKeyRing", () => {
  it.live(
    "round trip through Vault, with the least-privilege policy; the plaintext is not in the envelope",
    () => {
      const key = freshKeyName()
      return Effect.gen(function* () {
        const keyRing = yield* KeyRing.KeyRing
        const secret = "refresh-token-Zoë-🔑"
        const envelope = yield* keyRing.encrypt(Redacted.make(secret), aad("alice"))
        expect(envelope).toMatch(/^vault:v1:/)
        expect(envelope).not.toContain(Buffer.from(secret).toString("base64"))
        expect(keyRing.kidOf(envelope)).toBe("v1")
        expect(keyRing.currentKid).toBe("v1")
        expect(Redacted.value(yield* keyRing.decrypt(envelope, aad("alice")))).toBe(secret)
      }).pipe(Effect.provide(ring(key)))
    }
  )

  it.live("a ciphertext moved to another record or field fails with DecryptionFailed", () => {
    const key = freshKeyName()
    return withRing(ring(key), (keyRing) =>
      Effect.gen(function* () {
        const envelope = yield* keyRing.encrypt(Redacted.make("secret"), aad("alice"))
        const moved = failed(yield* Effect.flip(keyRing.decrypt(envelope, aad("bob"))))
        expect(moved.reason).toBe("authentication_failed")
        const otherField = failed(yield* Effect.flip(keyRing.decrypt(envelope, aad("alice", "accessToken"))))
        expect(otherField.reason).toBe("authentication_failed")
        const tampered = envelope.slice(0, -6) + (envelope.endsWith("AAAA==") ? "BBBB==" : "AAAA==")
        expect(failed(yield* Effect.flip(keyRing.decrypt(tampered, aad("alice")))).reason).toBe(
          "authentication_failed"
        )
        expect(failed(yield* Effect.flip(keyRing.decrypt("tb1.k.n.c", aad("alice")))).reason).toBe(
          "malformed"
        )
        expect(keyRing.kidOf("tb1.k.n.c")).toBeUndefined()
      })
    )
  })

  it.live(
    "after a key rotation old envelopes still decrypt, and rewrap moves them to the new version",
    () => {
      const key = freshKeyName()
      return withRing(ring(key), (keyRing) =>
        Effect.gen(function* () {
          const old = yield* keyRing.encrypt(Redacted.make("old secret"), aad("alice"))
          expect(yield* vault(`transit/keys/${key}/rotate`)).toBe(200)
          expect(Redacted.value(yield* keyRing.decrypt(old, aad("alice")))).toBe("old secret")
          expect(yield* keyRing.refresh).toBe("v2")
          expect(keyRing.currentKid).toBe("v2")
          const fresh = yield* keyRing.encrypt(Redacted.make("new secret"), aad("alice"))
          expect(keyRing.kidOf(fresh)).toBe("v2")
          const rewrapped = yield* keyRing.rewrap(old, aad("alice"))
          expect(keyRing.kidOf(rewrapped)).toBe("v2")
          expect(Redacted.value(yield* keyRing.decrypt(rewrapped, aad("alice")))).toBe("old secret")
          // rewrap keeps the record binding
          expect(((yield* Effect.flip(keyRing.rewrap(old, aad("bob")))) as DecryptionFailed).reason).toBe(
            "authentication_failed"
          )
          // once old versions may no longer decrypt, only rewrapped envelopes still do
          expect(yield* vault(`transit/keys/${key}/config`, { min_decryption_version: 2 })).toBe(200)
          const retired = failed(yield* Effect.flip(keyRing.decrypt(old, aad("alice"))))
          expect(retired.reason).toBe("unknown_key")
          expect(retired.kid).toBe("v1")
          expect(Redacted.value(yield* keyRing.decrypt(rewrapped, aad("alice")))).toBe("old secret")
        })
      )
    }
  )

  it.live("a rotation made elsewhere is picked up from the next encryption", () => {
    const key = freshKeyName()
    return withRing(ring(key), (keyRing) =>
      Effect.gen(function* () {
        expect(keyRing.currentKid).toBe("v1")
        yield* vault(`transit/keys/${key}/rotate`)
        yield* keyRing.encrypt(Redacted.make("x"), aad("alice"))
        expect(keyRing.currentKid).toBe("v2")
      })
    )
  })

  it.live("a missing key or a key that is not derived is a ConfigInvalid naming the fix", () =>
    Effect.gen(function* () {
      const missing = yield* Effect.flip(
        Layer.build(ring("no-such-key", emulator.rootToken)).pipe(Effect.scoped)
      )
      expect(missing._tag).toBe("ConfigInvalid")
      expect(missing.message).toContain("derived=true")
      const plain = yield* Effect.flip(
        Layer.build(ring(freshKeyName(false), emulator.rootToken)).pipe(Effect.scoped)
      )
      expect(plain._tag).toBe("ConfigInvalid")
      expect(plain.message).toMatch(/not a derived key/)
    })
  )

  it.live("sealed Vault: encrypt and decrypt are StorageUnavailable (sealed), not DecryptionFailed", () => {
    const key = freshKeyName()
    return withRing(ring(key), (keyRing) =>
      Effect.gen(function* () {
        const envelope = yield* keyRing.encrypt(Redacted.make("s"), aad("alice"))
        emulator.seal()
        const [encrypted, decrypted] = yield* Effect.all([
          Effect.flip(keyRing.encrypt(Redacted.make("s"), aad("alice"))),
          Effect.flip(keyRing.decrypt(envelope, aad("alice")))
        ]).pipe(Effect.ensuring(Effect.sync(emulator.unseal)))
        expect(((encrypted as StorageUnavailable).cause as VaultError).reason).toBe("sealed")
        expect(decrypted._tag).toBe("StorageUnavailable")
        expect(((decrypted as StorageUnavailable).cause as VaultError).reason).toBe("sealed")
        expect(Redacted.value(yield* keyRing.decrypt(envelope, aad("alice")))).toBe("s")
      })
    )
  })

  it.live(
    "a Transit transport failure (refused, reset, no answer, 5xx) is StorageUnavailable, never DecryptionFailed (case 11)",
    () => {
      const key = freshKeyName()
      const token = emulator.createToken({ policy: transitPolicy("transit", key) })
      const layer = TransitKeyRing.layer({
        address: emulator.address,
        auth: { token },
        key,
        retries: 0,
        timeout: "400 millis"
      })
      return withRing(layer, (keyRing) =>
        Effect.gen(function* () {
          const secret = "refresh-token-of-alice"
          const envelope = yield* keyRing.encrypt(Redacted.make(secret), aad("alice"))
          const expectUnavailable = (
            label: string,
            reason: VaultErrorReason,
            error: DecryptionFailed | StorageUnavailable
          ) => {
            expect({ label, tag: error._tag }).toEqual({ label, tag: "StorageUnavailable" })
            expect({ label, reason: ((error as StorageUnavailable).cause as VaultError).reason }).toEqual({
              label,
              reason
            })
            expect(error.message).not.toContain(secret)
            expect(error.message).not.toContain(envelope)
          }
          const faults: ReadonlyArray<readonly [string, TransportFault, VaultErrorReason]> = [
            ["HTTP 500", { kind: "status", status: 500, pathPrefix: "" }, "unavailable"],
            ["HTTP 502 from a proxy", { kind: "status", status: 502, pathPrefix: "" }, "unavailable"],
            ["HTTP 503, not sealed", { kind: "status", status: 503, pathPrefix: "" }, "unavailable"],
            ["connection reset", { kind: "reset", pathPrefix: "" }, "unavailable"],
            ["no answer", { kind: "hang", pathPrefix: "" }, "timeout"]
          ]
          for (const [label, fault, reason] of faults) {
            for (const action of ["decrypt", "rewrap"] as const) {
              emulator.injectFault({ ...fault, pathPrefix: `transit/${action}/${key}`, count: 1 })
              const attempt: Effect.Effect<unknown, DecryptionFailed | StorageUnavailable> =
                action === "decrypt"
                  ? keyRing.decrypt(envelope, aad("alice"))
                  : keyRing.rewrap(envelope, aad("alice"))
              const error = yield* Effect.flip(attempt).pipe(
                Effect.ensuring(Effect.sync(emulator.clearFaults))
              )
              expectUnavailable(`${action}: ${label}`, reason, error)
            }
          }
          // connection refused: Vault is down
          yield* Effect.promise(() => emulator.stop())
          const refused = yield* Effect.flip(keyRing.decrypt(envelope, aad("alice"))).pipe(
            Effect.ensuring(Effect.promise(() => emulator.restart()))
          )
          expectUnavailable("decrypt: connection refused", "unavailable", refused)
          // Transit itself refusing the ciphertext is still DecryptionFailed
          const moved = yield* Effect.flip(keyRing.decrypt(envelope, aad("bob")))
          expect(moved._tag).toBe("DecryptionFailed")
          expect(Redacted.value(yield* keyRing.decrypt(envelope, aad("alice")))).toBe(secret)
        })
      )
    }
  )
})
