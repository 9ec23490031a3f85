import { randomBytes, scrypt, timingSafeEqual } from "node:crypto"
import { Effect, Redacted } from "effect"

/**
 * Caller secrets are stored as scrypt hashes in a self-describing string:
 * `scrypt$N=16384,r=8,p=5$<salt>$<hash>` (salt and hash base64url). Verification derives the candidate
 * with the parameters the string names, to the stored digest's length, and compares the two digests
 * with `crypto.timingSafeEqual` (test/CallerSecret.test.ts checks what that refuses; bench/callerSecret.ts
 * measures whether the cost depends on the candidate).
 */

/**
 * OWASP's Password Storage Cheat Sheet lists equivalent scrypt settings from N=2^17, r=8, p=1 (128 MiB per
 * hash) down to N=2^13, r=8, p=10; this one keeps memory at 16 MiB per verification (a flood of bad
 * credentials cannot exhaust a small broker) and takes the cost from p: N=2^14, r=8, p=5.
 */
export const SCRYPT_PARAMETERS = { N: 16_384, r: 8, p: 5 } as const

/**
 * The weakest stored hash accepted: the least of OWASP's equivalent settings, as cost (N*r*p, here
 * 2^13*8*10 = 655,360) and as memory (N*r at least 2^13*8). A hash below it is refused at config load, and
 * never verifies.
 */
export const SCRYPT_FLOOR = { cost: 655_360, memory: 65_536 } as const

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
    const key = yield* Effect.orDie(derive(textOf(secret), salt, SCRYPT_PARAMETERS, KEY_LENGTH))
    const { N, r, p } = SCRYPT_PARAMETERS
    return `scrypt$N=${N},r=${r},p=${p}$${salt.toString("base64url")}$${key.toString("base64url")}`
  })

/** True when `encoded` is a well-formed hash of `secret`. A malformed hash never verifies. */
export const verifySecret = (
  secret: string | Redacted.Redacted<string>,
  encoded: string
): Effect.Effect<boolean> =>
  Effect.gen(function* () {
    const match = FORMAT.exec(encoded)
    if (match === null || secretHashProblem(encoded) !== undefined) return false
    const [, n, r, p, saltText = "", hashText = ""] = match
    const params = { N: Number(n), r: Number(r), p: Number(p) }
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

/**
 * Why a stored hash is refused, or undefined when it is acceptable: malformed, parameters that would let
 * a config make verification take seconds or gigabytes, or parameters below SCRYPT_FLOOR.
 */
export const secretHashProblem = (encoded: string): string | undefined => {
  const match = FORMAT.exec(encoded)
  if (match === null) return 'not of the form "scrypt$N=<n>,r=<r>,p=<p>$<salt>$<hash>"'
  const [N, r, p] = [Number(match[1]), Number(match[2]), Number(match[3])]
  if (N < 2 || N > 1_048_576 || (N & (N - 1)) !== 0 || r < 1 || r > 32 || p < 1 || p > 16) {
    return `scrypt parameters N=${N},r=${r},p=${p} are out of range (N a power of two up to 2^20, r 1-32, p 1-16)`
  }
  if (N * r * p < SCRYPT_FLOOR.cost || N * r < SCRYPT_FLOOR.memory) {
    const { N: n, r: rr, p: pp } = SCRYPT_PARAMETERS
    return `scrypt parameters N=${N},r=${r},p=${p} are below the accepted floor (at least N*r*p=${SCRYPT_FLOOR.cost} and N*r=${SCRYPT_FLOOR.memory}; new hashes use N=${n},r=${rr},p=${pp})`
  }
  return undefined
}
