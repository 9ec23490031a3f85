import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto"
import { Context, Effect, Layer, Redacted } from "effect"
import { ConfigInvalid, DecryptionFailed, type StorageUnavailable } from "./Errors.js"
import type { GrantKey } from "./Grant.js"

/**
 * Envelope encryption of secrets at rest. The local implementation is AES-256-GCM with a 96-bit random
 * nonce under one of several keys, each named by a key id; new data is written under the current key,
 * old keys still decrypt. The additional authenticated data binds a ciphertext to its record and field,
 * so a ciphertext copied to another record fails to decrypt with `DecryptionFailed`.
 *
 * Local envelope format: `tb1.<kid>.<nonce>.<ciphertext+tag>` (base64url parts).
 */
export interface KeyRingService {
  readonly encrypt: (
    plaintext: Redacted.Redacted<string>,
    aad: string
  ) => Effect.Effect<string, StorageUnavailable>
  /**
   * `DecryptionFailed` when the envelope does not decrypt (wrong or missing key, tampering, a value moved
   * to another record); `StorageUnavailable` when a remote key service (Vault Transit) could not be
   * asked - a retryable outage that says nothing about the data.
   */
  readonly decrypt: (
    envelope: string,
    aad: string
  ) => Effect.Effect<Redacted.Redacted<string>, DecryptionFailed | StorageUnavailable>
  /** The key id new envelopes are written under. */
  readonly currentKid: string
  /** The key id an envelope was written under, when the envelope names one this ring can read. */
  readonly kidOf: (envelope: string) => string | undefined
}

export class KeyRing extends Context.Tag("@token-broker/core/KeyRing")<KeyRing, KeyRingService>() {}

/** The AAD of one secret field of one record: binds its ciphertext to that record and field. */
export const aadFor = (key: GrantKey, field: string): string =>
  JSON.stringify(["token-broker/v1", key.tenant, key.subject, key.provider, field])

export interface LocalKey {
  /** Key id: 1-64 characters of [A-Za-z0-9_-]. */
  readonly kid: string
  /** 32 random bytes. */
  readonly key: Redacted.Redacted<Uint8Array>
}

export interface LocalKeyRingOptions {
  readonly keys: ReadonlyArray<LocalKey>
  /** The kid new data is encrypted under; defaults to the last key. */
  readonly current?: string | undefined
}

const VERSION = "tb1"
const KID = /^[A-Za-z0-9_-]{1,64}$/

/** Decodes a key given as base64 or base64url text (e.g. from a config file or environment variable). */
export const decodeKey = (
  kid: string,
  material: Redacted.Redacted<string>
): Effect.Effect<LocalKey, ConfigInvalid> => {
  const text = Redacted.value(material).trim()
  const bytes = Buffer.from(text, /[-_]/.test(text) ? "base64url" : "base64")
  return bytes.length === 32
    ? Effect.succeed({ kid, key: Redacted.make(new Uint8Array(bytes)) })
    : Effect.fail(
        new ConfigInvalid({
          field: `keys.${kid}`,
          message: `Encryption key "${kid}" must be 32 bytes encoded as base64 (got ${bytes.length} bytes); generate one with: node -e "console.log(require('crypto').randomBytes(32).toString('base64'))"`
        })
      )
}

/** A new random 32-byte key, base64-encoded. */
export const generateKeyMaterial = (): Redacted.Redacted<string> =>
  Redacted.make(randomBytes(32).toString("base64"))

/**
 * The local key ring asks no remote service: its decrypt fails only with `DecryptionFailed`. It can be
 * reloaded in place (a running broker whose config file now names another current key, or lists one key
 * more or less): every envelope written after `reload` returns is under the new current key.
 */
export interface LocalKeyRingService extends KeyRingService {
  readonly decrypt: (
    envelope: string,
    aad: string
  ) => Effect.Effect<Redacted.Redacted<string>, DecryptionFailed>
  /**
   * Swaps in another key list, validated as `makeLocal` validates it; on `ConfigInvalid` the ring keeps
   * the keys it had. Returns the current key id afterwards.
   */
  readonly reload: (options: LocalKeyRingOptions) => Effect.Effect<string, ConfigInvalid>
}

interface LocalKeys {
  readonly keys: ReadonlyMap<string, Uint8Array>
  readonly currentKid: string
  readonly currentKey: Uint8Array
}

const validateLocal = (options: LocalKeyRingOptions): Effect.Effect<LocalKeys, ConfigInvalid> =>
  Effect.gen(function* () {
    if (options.keys.length === 0) {
      return yield* new ConfigInvalid({ field: "keys", message: "At least one encryption key is required" })
    }
    const keys = new Map<string, Uint8Array>()
    for (const { kid, key } of options.keys) {
      if (!KID.test(kid)) {
        return yield* new ConfigInvalid({ field: "keys", message: `Key id "${kid}" must match ${KID}` })
      }
      if (keys.has(kid)) {
        return yield* new ConfigInvalid({ field: "keys", message: `Key id "${kid}" is listed twice` })
      }
      if (Redacted.value(key).length !== 32) {
        return yield* new ConfigInvalid({ field: `keys.${kid}`, message: `Key "${kid}" must be 32 bytes` })
      }
      keys.set(kid, Redacted.value(key))
    }
    const currentKid = options.current ?? options.keys[options.keys.length - 1]?.kid ?? ""
    const currentKey = keys.get(currentKid)
    if (currentKey === undefined) {
      return yield* new ConfigInvalid({
        field: "current",
        message: `Current key "${currentKid}" is not in the key ring`
      })
    }
    return { keys, currentKid, currentKey }
  })

export const makeLocal = (options: LocalKeyRingOptions): Effect.Effect<LocalKeyRingService, ConfigInvalid> =>
  Effect.gen(function* () {
    // one immutable snapshot, replaced whole by reload: an encrypt never mixes one list's kid with another's key
    let state = yield* validateLocal(options)
    const fail = (reason: DecryptionFailed["reason"], message: string, kid?: string) =>
      Effect.fail(new DecryptionFailed({ kid, reason, message }))

    const service: LocalKeyRingService = {
      get currentKid() {
        return state.currentKid
      },
      kidOf: (envelope) => {
        const [version, kid] = envelope.split(".")
        return version === VERSION && kid !== undefined && state.keys.has(kid) ? kid : undefined
      },
      reload: (next) =>
        Effect.map(validateLocal(next), (validated) => {
          state = validated
          return validated.currentKid
        }),
      encrypt: (plaintext, aad) =>
        Effect.sync(() => {
          const { currentKid, currentKey } = state
          const nonce = randomBytes(12)
          const cipher = createCipheriv("aes-256-gcm", currentKey, nonce)
          cipher.setAAD(Buffer.from(aad, "utf8"))
          const body = Buffer.concat([
            cipher.update(Redacted.value(plaintext), "utf8"),
            cipher.final(),
            cipher.getAuthTag()
          ])
          return [VERSION, currentKid, nonce.toString("base64url"), body.toString("base64url")].join(".")
        }),
      decrypt: (envelope, aad) => {
        const parts = envelope.split(".")
        if (parts.length !== 4 || parts[0] !== VERSION) {
          return fail("malformed", "The stored value is not a token-broker envelope (tb1)")
        }
        const [, kid = "", nonceText = "", bodyText = ""] = parts
        const key = state.keys.get(kid)

        if (key === undefined) {
          return fail(
            "unknown_key",
            `The value was encrypted under key "${kid}", which is not in the key ring`,
            kid
          )
        }
        const nonce = Buffer.from(nonceText, "base64url")
        const body = Buffer.from(bodyText, "base64url")
        if (nonce.length !== 12 || body.length < 16) {
          return fail("malformed", "The envelope's nonce or ciphertext has the wrong length", kid)
        }
        return Effect.try({
          try: () => {
            const decipher = createDecipheriv("aes-256-gcm", key, nonce)
            decipher.setAAD(Buffer.from(aad, "utf8"))
            decipher.setAuthTag(body.subarray(body.length - 16))
            const plain = Buffer.concat([
              decipher.update(body.subarray(0, body.length - 16)),
              decipher.final()
            ])
            return Redacted.make(plain.toString("utf8"))
          },
          catch: () =>
            new DecryptionFailed({
              kid,
              reason: "authentication_failed",
              message:
                "The value does not authenticate: wrong key, tampered data, or a value moved from another record"
            })
        })
      }
    }
    return service
  })

/** Whether a ring can be reloaded in place (the local ring can; a Vault Transit ring follows Vault). */
export const isReloadable = (ring: KeyRingService): ring is LocalKeyRingService =>
  typeof (ring as Partial<LocalKeyRingService>).reload === "function"

export const layerLocal = (options: LocalKeyRingOptions): Layer.Layer<KeyRing, ConfigInvalid> =>
  Layer.effect(KeyRing, makeLocal(options))
