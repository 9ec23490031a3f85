import * as crypto from "node:crypto"
import { Redacted } from "effect"

/** One-shot SHA-256 where Node has it (20.12 and later; several times cheaper than a hash object), else a hash object. */
const sha256: (text: string) => string =
  typeof crypto.hash === "function"
    ? (text) => crypto.hash("sha256", text, "base64url")
    : (text) => crypto.createHash("sha256").update(text, "utf8").digest("base64url")

const digests = new WeakMap<Redacted.Redacted<string>, string>()

/**
 * The SHA-256 (base64url) of a user's token: the key of what is cached about it (its verification, its
 * introspection, the session tokens exchanged for it), so the token itself is never kept. Remembered per
 * `Redacted` instance: a request hands the same instance to the verifier and to the session exchange,
 * and the token is hashed once per request.
 */
export const tokenDigest = (token: Redacted.Redacted<string>): string => {
  let digest = digests.get(token)
  if (digest === undefined) {
    digest = sha256(Redacted.value(token))
    digests.set(token, digest)
  }
  return digest
}
