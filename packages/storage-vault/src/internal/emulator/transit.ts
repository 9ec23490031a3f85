import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from "node:crypto"
import { b64, type EngineRequest, envelope, errors, Reply } from "./reply.js"

/** The transit engine: AES-256-GCM keys with versions, rotation, derived keys. */
export interface TransitKey {
  readonly derived: boolean
  readonly versions: Map<number, { key: Buffer; created: number }>
  latestVersion: number
  minDecryptionVersion: number
}

export interface TransitMount {
  readonly kind: "transit"
  readonly keys: Map<string, TransitKey>
}

export const keyInfo = (name: string, key: TransitKey) => ({
  name,
  type: "aes256-gcm96",
  derived: key.derived,
  ...(key.derived ? { kdf: "hkdf_sha256" } : {}),
  keys: Object.fromEntries([...key.versions].map(([v, k]) => [String(v), Math.floor(k.created / 1000)])),
  latest_version: key.latestVersion,
  min_available_version: 0,
  min_decryption_version: key.minDecryptionVersion,
  min_encryption_version: 0,
  deletion_allowed: false,
  exportable: false,
  allow_plaintext_backup: false,
  supports_encryption: true,
  supports_decryption: true,
  supports_derivation: true,
  supports_signing: false
})

export const newTransitKey = (derived: boolean): TransitKey => ({
  derived,
  versions: new Map([[1, { key: randomBytes(32), created: Date.now() }]]),
  latestVersion: 1,
  minDecryptionVersion: 1
})

export const keyFor = (key: TransitKey, version: number, context: Buffer | undefined): Buffer | Reply => {
  const material = key.versions.get(version)?.key
  if (material === undefined) return errors(400, "invalid ciphertext: invalid key version")
  if (!key.derived) return material
  if (context === undefined || context.length === 0) {
    return errors(
      400,
      "missing 'context' for key derivation; the key was created using a derived key, which means additional, per-request information must be included in order to perform operations with the key"
    )
  }
  return Buffer.from(hkdfSync("sha256", material, Buffer.alloc(0), context, 32))
}

export const encryptWith = (key: TransitKey, plaintext: Buffer, context: Buffer | undefined): Reply => {
  const material = keyFor(key, key.latestVersion, context)
  if (material instanceof Reply) return material
  const nonce = randomBytes(12)
  const cipher = createCipheriv("aes-256-gcm", material, nonce)
  const body = Buffer.concat([nonce, cipher.update(plaintext), cipher.final(), cipher.getAuthTag()])
  return new Reply(
    200,
    envelope({
      ciphertext: `vault:v${key.latestVersion}:${body.toString("base64")}`,
      key_version: key.latestVersion
    })
  )
}

export const decryptWith = (
  key: TransitKey,
  ciphertext: unknown,
  context: Buffer | undefined
): Buffer | Reply => {
  if (typeof ciphertext !== "string" || !ciphertext.startsWith("vault:")) {
    return errors(400, "invalid ciphertext: no prefix")
  }
  const match = /^vault:v(\d+):(.*)$/.exec(ciphertext)
  const body = b64(match?.[2])
  if (match === null || body === undefined) return errors(400, "invalid ciphertext: wrong format")
  const version = Number(match[1])
  if (version < key.minDecryptionVersion) {
    return errors(400, "ciphertext or signature version is disallowed by policy (too old)")
  }
  if (version > key.latestVersion) return errors(400, "invalid ciphertext: invalid key version")
  const material = keyFor(key, version, context)
  if (material instanceof Reply) return material
  if (body.length < 28) return errors(400, "invalid ciphertext: unable to decrypt")
  try {
    const decipher = createDecipheriv("aes-256-gcm", material, body.subarray(0, 12))
    decipher.setAuthTag(body.subarray(body.length - 16))
    return Buffer.concat([decipher.update(body.subarray(12, body.length - 16)), decipher.final()])
  } catch {
    return errors(400, "cipher: message authentication failed")
  }
}

export const handleTransit = (mount: TransitMount, request: EngineRequest): Reply => {
  const { rest, method, body, check } = request
  const parts = rest.split("/")
  const [area, name = "", action] = parts
  const context = body.context === undefined ? undefined : b64(body.context)
  if (body.context !== undefined && context === undefined)
    return errors(400, "failed to base64-decode context")
  if (area === "keys") {
    const key = mount.keys.get(name)
    if (action === undefined && method === "GET") {
      const denied = check("read")
      if (denied !== undefined) return denied
      return key === undefined ? errors(404) : new Reply(200, envelope(keyInfo(name, key)))
    }
    if (action === undefined && method === "POST") {
      const denied = check("update")
      if (denied !== undefined) return denied
      const created = key ?? newTransitKey(body.derived === true)
      mount.keys.set(name, created)
      return new Reply(200, envelope(keyInfo(name, created)))
    }
    if (action === "rotate" && method === "POST") {
      const denied = check("update")
      if (denied !== undefined) return denied
      if (key === undefined) return errors(400, "key not found")
      key.latestVersion++
      key.versions.set(key.latestVersion, { key: randomBytes(32), created: Date.now() })
      return new Reply(200, envelope(keyInfo(name, key)))
    }
    if (action === "config" && method === "POST") {
      const denied = check("update")
      if (denied !== undefined) return denied
      if (key === undefined) return errors(400, `no existing key named ${name} could be found`)
      if (typeof body.min_decryption_version === "number") {
        if (body.min_decryption_version > key.latestVersion) {
          return errors(400, "cannot set min decryption version to a value greater than the latest version")
        }
        key.minDecryptionVersion = Math.max(1, body.min_decryption_version)
      }
      return new Reply(200, envelope(keyInfo(name, key)))
    }
  }
  if (method !== "POST" && method !== "PUT") return errors(405, "unsupported operation")
  if (area === "encrypt") {
    let key = mount.keys.get(name)
    const denied = check(key === undefined ? "create" : "update")
    if (denied !== undefined) return denied
    const plaintext = b64(body.plaintext)
    if (plaintext === undefined) return errors(400, "failed to base64-decode plaintext")
    if (key === undefined) {
      // upsert, as Vault does for a token allowed to create
      key = newTransitKey(context !== undefined)
      mount.keys.set(name, key)
    }
    return encryptWith(key, plaintext, context)
  }
  if (area === "decrypt" || area === "rewrap") {
    const denied = check("update")
    if (denied !== undefined) return denied
    const key = mount.keys.get(name)
    if (key === undefined) return errors(400, "encryption key not found")
    const plaintext = decryptWith(key, body.ciphertext, context)
    if (plaintext instanceof Reply) return plaintext
    if (area === "decrypt") return new Reply(200, envelope({ plaintext: plaintext.toString("base64") }))
    return encryptWith(key, plaintext, context)
  }
  return errors(405, "unsupported operation")
}
