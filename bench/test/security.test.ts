/**
 * Security check of the issue "reliability, security and load" that no package covered yet (the others
 * are listed, with where they live, in BENCHMARKS.md): a grant record copied onto another subject's row
 * in a real store (SQLite, PostgreSQL, with SQL, as an attacker with database access would) does not
 * decrypt: the broker answers DecryptionFailed and never serves the other subject's token. (Caller-secret
 * verification is tested for what it does in packages/config/test/CallerSecret.test.ts.)
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import { tableName, withSql } from "../src/StoreSql.js"
import { SQL_BACKENDS } from "./support/backends.js"
import { benchUsers } from "./support/provisioning.js"
import { suiteSetup } from "./support/suiteSetup.js"
import type { CallOutcome } from "./support/workerProtocol.js"
import { devIdpForWorkers, provisionedSqlStore } from "./support/workerSuite.js"
import { startWorker } from "./support/workers.js"

const users = benchUsers(2)
const idp = devIdpForWorkers({ users })

describe.each(SQL_BACKENDS)("%s store: a record copied between subjects", (kind) => {
  const setup = suiteSetup(180_000, async (defer) => {
    return provisionedSqlStore(kind, idp(), defer, "this test writes SQL")
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
