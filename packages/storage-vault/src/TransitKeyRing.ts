import { ConfigInvalid, DecryptionFailed, KeyRing, StorageUnavailable } from "@token-broker/core"
import { Context, Effect, Layer, Redacted, type Scope } from "effect"
import { makeClient, type VaultClient } from "./internal/client.js"
import type { VaultConnectionOptions } from "./VaultConnection.js"
import type { VaultError } from "./VaultError.js"

export interface TransitKeyRingOptions extends VaultConnectionOptions {
  /** Where the Transit engine is mounted (default `transit`). */
  readonly mount?: string | undefined
  /**
   * The Transit key (default `token-broker`). It must exist and be a derived key, so each ciphertext is
   * bound to its record: `vault write -f transit/keys/token-broker derived=true`.
   */
  readonly key?: string | undefined
}

/**
 * core's `KeyRing` on Vault Transit, plus `rewrap`. Envelopes are Vault's own ciphertexts
 * (`vault:v<N>:...`); their kid is the key version `v<N>`. The AAD of a record is the derivation
 * `context`, so a ciphertext moved to another record fails to decrypt (`DecryptionFailed`).
 */
export interface TransitKeyRingService extends KeyRing.KeyRingService {
  /**
   * Re-encrypts an envelope under the key's latest version inside Vault (the plaintext never leaves
   * it), for `keys rotate` after `vault write -f transit/keys/<key>/rotate`.
   */
  readonly rewrap: (
    envelope: string,
    aad: string
  ) => Effect.Effect<string, DecryptionFailed | StorageUnavailable>
  /** Reads the key's latest version again, so `currentKid` follows a rotation made elsewhere. */
  readonly refresh: Effect.Effect<string, StorageUnavailable>
}

export class TransitKeyRing extends Context.Tag("@token-broker/storage-vault/TransitKeyRing")<
  TransitKeyRing,
  TransitKeyRingService
>() {}

const ENVELOPE = /^vault:(v\d+):[A-Za-z0-9+/]+={0,2}$/

const base64 = (text: string): string => Buffer.from(text, "utf8").toString("base64")

const errorsOf = (body: unknown): string => {
  const errors = (body as { errors?: unknown } | null)?.errors
  return Array.isArray(errors) ? errors.filter((e) => typeof e === "string").join("; ") : ""
}

/** Builds the key ring: checks that the key exists and is derived, and learns its latest version. */
export const make = (
  options: TransitKeyRingOptions
): Effect.Effect<TransitKeyRingService, StorageUnavailable | ConfigInvalid, Scope.Scope> =>
  Effect.gen(function* () {
    const unavailable =
      (operation: string) =>
      (error: VaultError): StorageUnavailable =>
        new StorageUnavailable({ operation, message: error.message, cause: error })
    const client: VaultClient = yield* makeClient(options).pipe(Effect.mapError(unavailable("connect")))
    const mount = (options.mount ?? "transit").replace(/^\/+|\/+$/g, "")
    const name = options.key ?? "token-broker"
    let latest = 0

    const readKey = Effect.gen(function* () {
      const path = `${mount}/keys/${encodeURIComponent(name)}`
      const response = yield* client
        .request("GET", path, { allow: [404] })
        .pipe(Effect.mapError(unavailable("transit.readKey")))
      const data = (response.body as { data?: { latest_version?: unknown; derived?: unknown } } | null)?.data
      if (response.status === 404 || typeof data?.latest_version !== "number") {
        return yield* new ConfigInvalid({
          field: "key",
          message: `Transit key "${name}" does not exist at ${path}; create it with: vault write -f ${mount}/keys/${name} derived=true`
        })
      }
      if (data.derived !== true) {
        return yield* new ConfigInvalid({
          field: "key",
          message: `Transit key "${name}" is not a derived key, so a ciphertext would not be bound to its record; create one with derived=true`
        })
      }
      latest = Math.max(latest, data.latest_version)
      return `v${latest}`
    })
    yield* readKey

    const post = (action: string, body: Record<string, unknown>) =>
      client.request("POST", `${mount}/${action}/${encodeURIComponent(name)}`, { body, allow: [400] })

    const decryptFailure = (kid: string | undefined, status: number, body: unknown): DecryptionFailed => {
      const said = errorsOf(body)
      const reason: DecryptionFailed["reason"] = /authentication failed/i.test(said)
        ? "authentication_failed"
        : /too old|key version|key not found/i.test(said)
          ? "unknown_key"
          : /invalid ciphertext|base64/i.test(said)
            ? "malformed"
            : "backend"
      return new DecryptionFailed({
        kid,
        reason,
        message:
          reason === "authentication_failed"
            ? "The value does not authenticate under Vault Transit: tampered data, or a value moved from another record"
            : `Vault Transit refused the ciphertext (${status}${said === "" ? "" : `: ${said}`})`
      })
    }

    const kidOf = (envelope: string): string | undefined => ENVELOPE.exec(envelope)?.[1]

    const malformed = () =>
      Effect.fail(
        new DecryptionFailed({
          reason: "malformed",
          message: "The stored value is not a Vault Transit ciphertext"
        })
      )

    const ciphertextOf = (operation: string, path: string, body: unknown) => {
      const data = (body as { data?: { ciphertext?: unknown; key_version?: unknown } } | null)?.data
      if (typeof data?.ciphertext !== "string" || kidOf(data.ciphertext) === undefined) {
        return Effect.fail(
          new StorageUnavailable({
            operation,
            message: `Vault's answer to ${path} has no valid "data.ciphertext"`
          })
        )
      }
      if (typeof data.key_version === "number") latest = Math.max(latest, data.key_version)
      return Effect.succeed(data.ciphertext)
    }

    /**
     * Sends a stored ciphertext to `action` (decrypt, rewrap) and answers the body of Vault's 200. Not a
     * Transit ciphertext, or refused by Vault: `DecryptionFailed`. Vault not answering (refused, reset,
     * timeout, 5xx, sealed) is an outage, not bad data: `StorageUnavailable`.
     */
    const postCiphertext = (action: "decrypt" | "rewrap", envelope: string, aad: string) =>
      Effect.gen(function* () {
        const kid = kidOf(envelope)
        if (kid === undefined) return yield* malformed()
        const response = yield* post(action, { ciphertext: envelope, context: base64(aad) }).pipe(
          Effect.mapError(unavailable(action))
        )
        if (response.status !== 200) return yield* decryptFailure(kid, response.status, response.body)
        return response.body
      })

    const service: TransitKeyRingService = {
      get currentKid() {
        return `v${latest}`
      },
      kidOf,
      encrypt: (plaintext, aad) =>
        Effect.gen(function* () {
          const response = yield* post("encrypt", {
            plaintext: base64(Redacted.value(plaintext)),
            context: base64(aad)
          }).pipe(Effect.mapError(unavailable("encrypt")))
          if (response.status !== 200) {
            return yield* new StorageUnavailable({
              operation: "encrypt",
              message: `Vault Transit refused to encrypt with key "${name}" (${response.status}: ${errorsOf(response.body)})`
            })
          }
          return yield* ciphertextOf("encrypt", `${mount}/encrypt/${name}`, response.body)
        }),
      decrypt: (envelope, aad) =>
        Effect.gen(function* () {
          const body = yield* postCiphertext("decrypt", envelope, aad)
          const plaintext = (body as { data?: { plaintext?: unknown } } | null)?.data?.plaintext
          if (typeof plaintext !== "string") {
            return yield* new StorageUnavailable({
              operation: "decrypt",
              message: `Vault's answer to ${mount}/decrypt/${name} has no "data.plaintext"`
            })
          }
          return Redacted.make(Buffer.from(plaintext, "base64").toString("utf8"))
        }),
      rewrap: (envelope, aad) =>
        Effect.flatMap(postCiphertext("rewrap", envelope, aad), (body) =>
          ciphertextOf("rewrap", `${mount}/rewrap/${name}`, body)
        ),
      refresh: readKey.pipe(
        Effect.catchTag("ConfigInvalid", (e) =>
          Effect.fail(new StorageUnavailable({ operation: "transit.readKey", message: e.message }))
        )
      )
    }
    return service
  })

/**
 * core's `KeyRing` (and this package's `TransitKeyRing`, for `rewrap`) on Vault Transit. Works with any
 * storage backend, e.g. grants in PostgreSQL encrypted by Transit:
 * `layer({ address, auth: { appRole: { roleId, secretId } }, key: "token-broker" })`.
 */
export const layer = (
  options: TransitKeyRingOptions
): Layer.Layer<KeyRing.KeyRing | TransitKeyRing, StorageUnavailable | ConfigInvalid> =>
  Layer.scopedContext(
    Effect.map(make(options), (service) =>
      Context.make(TransitKeyRing, service).pipe(Context.add(KeyRing.KeyRing, service))
    )
  )
