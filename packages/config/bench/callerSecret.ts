/**
 * Whether the cost of verifying a caller secret depends on the candidate: the median time of
 * `verifySecret` for wrong secrets differing from the right one at its first character, at its last,
 * and of other lengths (empty, one character, 10,000), and for the right secret against a stored
 * digest changed in its first or last byte, each against the right secret verifying, measured in the
 * same run in interleaved rounds. Prints the ratios (1.00 = the same cost) and a `BENCH_JSON {...}`
 * line; nothing is asserted, since a timing on a shared machine proves nothing either way.
 *
 *   pnpm --filter @token-broker/config bench
 */
import { performance } from "node:perf_hooks"
import { Effect } from "effect"
import { hashSecret, verifySecret } from "../src/index.js"

const ROUNDS = Number(process.env.BENCH_SECRET_ROUNDS ?? 25)
const SECRET = "correct-horse-battery-staple-0123456789"

const hash = await Effect.runPromise(hashSecret(SECRET))
const cut = hash.lastIndexOf("$")
const digest = Buffer.from(hash.slice(cut + 1), "base64url")
const digestChangedAt = (index: number) => {
  const copy = Buffer.from(digest)
  copy[index] = (copy[index] ?? 0) ^ 0x01
  return `${hash.slice(0, cut + 1)}${copy.toString("base64url")}`
}

const cases: ReadonlyArray<{ readonly name: string; readonly secret: string; readonly hash: string }> = [
  { name: "right secret", secret: SECRET, hash },
  { name: "wrong first character", secret: `X${SECRET.slice(1)}`, hash },
  { name: "wrong last character", secret: `${SECRET.slice(0, -1)}X`, hash },
  { name: "empty", secret: "", hash },
  { name: "one character", secret: "c", hash },
  { name: "10,000 characters", secret: "x".repeat(10_000), hash },
  { name: "digest changed in its first byte", secret: SECRET, hash: digestChangedAt(0) },
  { name: "digest changed in its last byte", secret: SECRET, hash: digestChangedAt(digest.length - 1) }
]

const once = async (secret: string, encoded: string) => {
  const started = performance.now()
  await Effect.runPromise(verifySecret(secret, encoded))
  return performance.now() - started
}

// warm-up, then rounds that visit every case in turn, so drift on a busy machine hits them all alike
for (const c of cases) await once(c.secret, c.hash)
const samples = new Map(cases.map((c) => [c.name, [] as Array<number>]))
for (let round = 0; round < ROUNDS; round++) {
  for (const c of cases) samples.get(c.name)?.push(await once(c.secret, c.hash))
}
const median = (values: ReadonlyArray<number>) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN
}
const medians = Object.fromEntries(cases.map((c) => [c.name, median(samples.get(c.name) ?? [])]))
const baseline = medians["right secret"] ?? Number.NaN
const results = cases.map((c) => ({
  name: c.name,
  medianMs: Number((medians[c.name] ?? Number.NaN).toFixed(2)),
  ratio: Number(((medians[c.name] ?? Number.NaN) / baseline).toFixed(3))
}))
const firstVsLast =
  (medians["wrong first character"] ?? Number.NaN) / (medians["wrong last character"] ?? Number.NaN)

console.log(`verifySecret, median of ${ROUNDS} interleaved rounds (scrypt N=16384, r=8, p=1)`)
for (const r of results) {
  console.log(
    `  ${r.name.padEnd(34)} ${r.medianMs.toFixed(2).padStart(8)} ms  ${r.ratio.toFixed(3)}x the right secret's`
  )
}
console.log(`  mismatch at the first character / at the last: ${firstVsLast.toFixed(3)}x`)
console.log(
  `BENCH_JSON ${JSON.stringify({
    benchmark: "caller-secret-verify",
    rounds: ROUNDS,
    baselineMs: Number(baseline.toFixed(2)),
    firstVsLastMismatch: Number(firstVsLast.toFixed(3)),
    results
  })}`
)
