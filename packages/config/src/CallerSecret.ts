import { randomBytes, scrypt, timingSafeEqual } from "node:crypto"
import { Effect, Redacted } from "effect"

/**
 * Caller secrets are stored as scrypt hashes in a self-describing string:
 * `scrypt$N=16384,r=8,p=1$<salt>$<hash>` (salt and hash base64url). Verification derives the candidate
 * with the parameters the string names, to the stored digest's length, and compares the two digests
 * with `crypto.timingSafeEqual` (test/CallerSecret.test.ts checks what that refuses; bench/callerSecret.ts
 * measures whether the cost depends on the candidate).
 */

const DEFAULT = { N: 16_384, r: 8, p: 1 } as const
const KEY_LENGTH = 32
const FORMAT = /^scrypt\$N=(\d+),r=(\d+),p=(\d+)\$([A-Za-z0-9_-]{16,})\$([A-Za-z0-9_-]{32,})$/

const derive = (secret: string, salt: Buffer, params: { N: number; r: number; p: number }, length: number) =>
  Effect.async<Buffer, Error>((resume) => {
    scrypt(secret, salt, length, { ...params, maxmem: 256 * params.N * params.r }, (error, key) =>
      resume(error === null ? Effect.succeed(key) : Effect.fail(error))
    )
  })

const textOf = (secret: string | Redacted.Redacted<string>) =>
  Redacted.isRedacted(secret) ? Redacted.value(secret) : secret

/** Hashes a caller secret for the config file's `secretHash`. */
export const hashSecret = (secret: string | Redacted.Redacted<string>): Effect.Effect<string> =>
  Effect.gen(function* () {
    const salt = randomBytes(16)
    const key = yield* Effect.orDie(derive(textOf(secret), salt, DEFAULT, KEY_LENGTH))
    return `scrypt$N=${DEFAULT.N},r=${DEFAULT.r},p=${DEFAULT.p}$${salt.toString("base64url")}$${key.toString("base64url")}`
  })

/** True when `encoded` is a well-formed hash of `secret`. A malformed hash never verifies. */
export const verifySecret = (
  secret: string | Redacted.Redacted<string>,
  encoded: string
): Effect.Effect<boolean> =>
  Effect.gen(function* () {
    const match = FORMAT.exec(encoded)
    if (match === null) return false
    const [, n, r, p, saltText = "", hashText = ""] = match
    const params = { N: Number(n), r: Number(r), p: Number(p) }
    // bounded cost: a config cannot make verification take seconds or gigabytes
    if (
      params.N < 2 ||
      params.N > 1_048_576 ||
      (params.N & (params.N - 1)) !== 0 ||
      params.r > 32 ||
      params.p > 16
    ) {
      return false
    }
    const expected = Buffer.from(hashText, "base64url")
    // A digest shorter than the one hashSecret writes is weaker than configured: never accepted.
    if (expected.length < KEY_LENGTH) return false
    const actual = yield* derive(
      textOf(secret),
      Buffer.from(saltText, "base64url"),
      params,
      expected.length
    ).pipe(Effect.orElseSucceed(() => Buffer.alloc(expected.length)))
    return actual.length === expected.length && timingSafeEqual(actual, expected)
  })

/** True when the text has the form `hashSecret` produces. */
export const isSecretHash = (encoded: string): boolean => FORMAT.test(encoded)
