import { createHash, randomBytes } from "node:crypto"

/** `bytes` random bytes as base64url text (state, nonce, PKCE verifier, lease owner). */
export const randomToken = (bytes = 32): string => randomBytes(bytes).toString("base64url")

/** SHA-256 of a text as base64url: used to key secrets (state, subject tokens) without storing them. */
export const sha256 = (text: string): string => createHash("sha256").update(text, "utf8").digest("base64url")

/** The PKCE S256 challenge of a verifier (RFC 7636). */
export const s256 = (verifier: string): string =>
  createHash("sha256").update(verifier, "ascii").digest("base64url")
