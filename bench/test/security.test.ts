/**
 * Security checks of the issue "reliability, security and load" that no package covered yet (the others
 * are listed, with where they live, in BENCHMARKS.md):
 * - caller secrets are compared in constant time, by construction: verification derives a fixed-length
 *   digest whatever the input, compares digests with `crypto.timingSafeEqual`, and refuses a wrong
 *   secret of any length without throwing or short-cutting on the length;
 * - a grant record copied onto another subject's row in a real store (SQLite, PostgreSQL, with SQL, as
 *   an attacker with database access would) does not decrypt: the broker answers DecryptionFailed and
 *   never serves the other subject's token.
 */
import { readFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import * as SqlClient from "@effect/sql/SqlClient"
import { hashSecret, verifySecret } from "@token-broker/config"
import { type DevIdp, startDevIdp } from "@token-broker/dev-idp"
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { tableName, withSql } from "../src/StoreSql.js"
import { prepareBackend, SQL_BACKENDS } from "./support/backends.js"
import { benchUsers, startProvisioner } from "./support/provisioning.js"
import { suiteSetup } from "./support/suiteSetup.js"
import type { CallOutcome } from "./support/workerProtocol.js"
import { killAllWorkers, startWorker } from "./support/workers.js"

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..")

describe("caller secrets are compared in constant time", () => {
  it("a wrong secret of any length is refused, never thrown on, and the right one verifies", async () => {
    const secret = "correct-horse-battery-staple-0123456789"
    const hash = await Effect.runPromise(hashSecret(secret))
    expect(await Effect.runPromise(verifySecret(secret, hash))).toBe(true)
    const wrong = [
      "",
      "c",
      secret.slice(0, -1),
      `${secret.slice(0, -1)}X`, // differs in the last character only
      `${secret}0`,
      secret.toUpperCase(),
      "x".repeat(10_000),
      "\u0000".repeat(secret.length)
    ]
    for (const candidate of wrong) {
      expect(
        await Effect.runPromise(verifySecret(candidate, hash)),
        `accepted ${candidate.slice(0, 12)}`
      ).toBe(false)
    }
    // a malformed or truncated hash never verifies, and never throws
    for (const broken of [
      "",
      "scrypt$",
      `${hash.slice(0, -10)}${hash.at(-10) === "A" ? "Q" : "A"}${hash.slice(-9)}`,
      hash.replace("N=16384", "N=3")
    ]) {
      expect(await Effect.runPromise(verifySecret(secret, broken))).toBe(false)
    }
  })

  it("by construction: a fixed-length digest of the candidate, compared with timingSafeEqual, no === on secrets", () => {
    const source = readFileSync(join(ROOT, "packages/config/src/CallerSecret.ts"), "utf8")
    // the candidate's digest has the stored digest's length, whatever the candidate's length ...
    expect(source).toMatch(/derive\(\s*textOf\(secret\),[\s\S]*?expected\.length\s*\)/)
    // ... even when derivation fails (a zero digest of the same length, compared all the same)
    expect(source).toMatch(/orElseSucceed\(\(\) => Buffer\.alloc\(expected\.length\)\)/)
    expect(source).toMatch(/timingSafeEqual\(actual, expected\)/)
    expect(source).not.toMatch(/secret\s*===|===\s*secret|hashText\s*===|===\s*hashText/)
    // an unknown caller id costs a verification too (against a dummy hash): no early answer
    const callers = readFileSync(join(ROOT, "apps/broker/src/Callers.ts"), "utf8")
    expect(callers).toMatch(/verifySecret\(secret, await dummy\)/)
  })
})

let idp: DevIdp
const users = benchUsers(2)
beforeAll(async () => {
  idp = await startDevIdp({ users })
})
afterAll(async () => {
  await killAllWorkers()
  await idp?.close()
})

describe.each(SQL_BACKENDS)("%s store: a record copied between subjects", (kind) => {
  const setup = suiteSetup(180_000, async (defer) => {
    const backend = await prepareBackend(kind)
    defer(backend.cleanup)
    const spec = backend.spec
    if (spec.kind !== "sqlite" && spec.kind !== "postgres") throw new Error("this test writes SQL")
    const provisioner = await startProvisioner(idp, spec)
    defer(provisioner.close)
    return { spec, provisioner }
  })

  it("does not decrypt: DecryptionFailed, never the other subject's token", async () => {
    const { spec, provisioner } = await setup()
    const [alice, bob] = users
    if (alice === undefined || bob === undefined) throw new Error("no users")
    await provisioner.connect(alice)
    await provisioner.connect(bob)
    const worker = await startWorker(provisioner.workerInit(`${kind}-copy`, { ttlMs: 5_000, waitMs: 5_000 }))
    const bobsToken = await worker.request<CallOutcome>({ kind: "token", subject: bob.sub })
    expect(bobsToken.ok).toBe(true)

    // Bob's secrets (refresh token, access token: the JSON column) copied onto Alice's row.
    const grants = tableName(spec, "grants")
    await withSql(
      spec,
      Effect.flatMap(SqlClient.SqlClient, (sql) =>
        sql.unsafe(
          `UPDATE ${grants} SET data = (SELECT data FROM ${grants} WHERE subject = ${kind === "postgres" ? "$1" : "?"}), version = version + 1 WHERE subject = ${kind === "postgres" ? "$2" : "?"}`,
          [bob.sub, alice.sub]
        )
      )
    )
    const copied = await provisioner.grant(alice.sub)
    await expect(provisioner.decrypt(copied)).rejects.toMatchObject({
      name: expect.stringContaining("DecryptionFailed")
    })

    const outcome = await worker.request<CallOutcome>({ kind: "token", subject: alice.sub })
    expect(outcome.ok).toBe(false)
    if (!outcome.ok) expect(outcome.error.tag).toBe("DecryptionFailed")
    // Bob's own grant is untouched
    const again = await worker.request<CallOutcome>({ kind: "token", subject: bob.sub })
    expect(again.ok && bobsToken.ok && again.tokenHash === bobsToken.tokenHash).toBe(true)
    await worker.kill()
  }, 180_000)
})
