import { scryptSync } from "node:crypto"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Redacted } from "effect"
import { hashSecret, isSecretHash, SCRYPT_FLOOR, secretHashProblem, verifySecret } from "../src/index.js"

/**
 * What verification does, observed from outside: a candidate is derived to the stored digest's whole
 * length and the two digests compared over that whole length, so every wrong secret (any length, any
 * position of the difference) and every altered digest (truncated, extended, one byte changed at either
 * end) is refused, without throwing. Whether its cost depends on where a mismatch is cannot be asserted
 * without a timing bound; `pnpm --filter @token-broker/config bench` measures it and prints the ratios.
 */
const SECRET = "correct horse battery staple"
/** Dozens of scrypt derivations: a wide window for a busy machine (a safety net, never a timing check). */
const WIDE_WINDOW = 120_000

const parts = (hash: string) => {
  const cut = hash.lastIndexOf("$")
  return { head: hash.slice(0, cut + 1), digest: Buffer.from(hash.slice(cut + 1), "base64url") }
}
const withDigest = (hash: string, digest: Buffer) => `${parts(hash).head}${digest.toString("base64url")}`
const flipByte = (bytes: Buffer, index: number) => {
  const copy = Buffer.from(bytes)
  copy[index] = (copy[index] ?? 0) ^ 0x01
  return copy
}

/** Each candidate checked against `hash`, four at a time. */
const verifyEach = (candidates: ReadonlyArray<string>, hash: string) =>
  Effect.forEach(candidates, (candidate) => verifySecret(candidate, hash), { concurrency: 4 })

describe("caller secrets", () => {
  it.effect("hashSecret is self-describing and salted; the right secret verifies, as text or Redacted", () =>
    Effect.gen(function* () {
      const hash = yield* hashSecret(SECRET)
      expect(hash).toMatch(/^scrypt\$N=16384,r=8,p=5\$/)
      expect(isSecretHash(hash)).toBe(true)
      expect(parts(hash).digest.length).toBe(32)
      expect(yield* hashSecret(SECRET)).not.toBe(hash)
      expect(yield* verifySecret(SECRET, hash)).toBe(true)
      expect(yield* verifySecret(Redacted.make(SECRET), hash)).toBe(true)
    })
  )

  it.effect(
    "a wrong secret of every length from 0 to twice the secret's, and of 10,000, is refused",
    () =>
      Effect.gen(function* () {
        const hash = yield* hashSecret(SECRET)
        const candidates = [
          ...Array.from({ length: 2 * SECRET.length + 1 }, (_, n) => SECRET.padEnd(n, "x").slice(0, n)),
          "x".repeat(10_000),
          `${SECRET}${"\u0000".repeat(10_000)}`
        ].filter((candidate) => candidate !== SECRET)
        const verdicts = yield* verifyEach(candidates, hash)
        expect(verdicts).toHaveLength(2 * SECRET.length + 2)
        expect(verdicts.filter((ok) => ok)).toEqual([])
      }),
    WIDE_WINDOW
  )

  it.effect(
    "a secret differing in one byte, at any position (the last one too), is refused",
    () =>
      Effect.gen(function* () {
        const hash = yield* hashSecret(SECRET)
        const bytes = Buffer.from(SECRET, "utf8")
        const candidates = Array.from(bytes, (_, index) => flipByte(bytes, index).toString("latin1"))
        expect(candidates.at(-1)).toBe(`${SECRET.slice(0, -1)}d`)
        const verdicts = yield* verifyEach(candidates, hash)
        expect(verdicts).toEqual(candidates.map(() => false))
      }),
    WIDE_WINDOW
  )

  it.effect(
    "the stored digest is compared over its whole length: truncated, extended or one byte changed never verifies",
    () =>
      Effect.gen(function* () {
        const hash = yield* hashSecret(SECRET)
        const { digest } = parts(hash)
        const salt = Buffer.from(hash.split("$")[2] ?? "", "base64url")
        const derived = (length: number) => scryptSync(SECRET, salt, length, { N: 16_384, r: 8, p: 5 })
        expect(derived(32).equals(digest)).toBe(true)
        const altered = [
          ...Array.from({ length: 31 }, (_, n) => digest.subarray(0, n + 1)), // truncated to 1..31 bytes
          flipByte(derived(33), 32), // the stored digest plus a byte that is not the derivation's
          flipByte(digest, 0),
          flipByte(digest, digest.length - 1)
        ]
        for (const broken of altered) {
          expect(yield* verifySecret(SECRET, withDigest(hash, broken)), `${broken.length} bytes`).toBe(false)
        }
        // a longer digest that really is the secret's derivation verifies: the candidate is derived to
        // the stored length, not to a fixed 32 bytes; changing only its last byte (past 32) is refused
        const long = derived(48)
        expect(yield* verifySecret(SECRET, withDigest(hash, long))).toBe(true)
        expect(yield* verifySecret(SECRET, withDigest(hash, flipByte(long, 47)))).toBe(false)
      }),
    WIDE_WINDOW
  )

  it.effect("a malformed hash or one with absurd parameters is refused, not computed", () =>
    Effect.gen(function* () {
      const hash = yield* hashSecret(SECRET)
      for (const broken of [
        "",
        "scrypt$",
        "scrypt$garbage",
        SECRET,
        hash.replace("N=16384", "N=3"),
        hash.replace("N=16384", "N=1073741824"),
        hash.replace("r=8", "r=64"),
        hash.replace("p=5", "p=99")
      ]) {
        expect(yield* verifySecret(SECRET, broken), broken.slice(0, 24)).toBe(false)
      }
    })
  )

  it.effect(
    "a hash below the floor (the earlier N=16384,r=8,p=1) never verifies, even for the right secret",
    () =>
      Effect.gen(function* () {
        const salt = Buffer.alloc(16, 7)
        const weak = (params: { N: number; r: number; p: number }) =>
          `scrypt$N=${params.N},r=${params.r},p=${params.p}$${salt.toString("base64url")}$${scryptSync(SECRET, salt, 32, params).toString("base64url")}`
        const earlier = weak({ N: 16_384, r: 8, p: 1 })
        expect(isSecretHash(earlier)).toBe(true)
        expect(yield* verifySecret(SECRET, earlier)).toBe(false)
        expect(secretHashProblem(earlier)).toMatch(/N=16384,r=8,p=1 are below the accepted floor/)
        // memory below the floor is refused whatever p makes up in cost
        const lowMemory = weak({ N: 1_024, r: 8, p: 16 })
        expect(1_024 * 8 * 16 < SCRYPT_FLOOR.cost).toBe(true)
        expect(yield* verifySecret(SECRET, lowMemory)).toBe(false)
        // the weakest of OWASP's equivalent settings is accepted
        const floor = weak({ N: 8_192, r: 8, p: 10 })
        expect(secretHashProblem(floor)).toBeUndefined()
        expect(yield* verifySecret(SECRET, floor)).toBe(true)
        expect(secretHashProblem(yield* hashSecret(SECRET))).toBeUndefined()
      }),
    WIDE_WINDOW
  )
})
