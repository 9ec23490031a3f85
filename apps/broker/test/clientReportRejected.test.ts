/**
 * `reportRejected` of `@token-broker/client` against the real broker (a real dev-idp, a real SQLite file,
 * the broker bound to port 0): a caller says the upstream API refused (401) a token it was given; the
 * broker drops it, so the next call refreshes; a token already replaced is not counted. The client's
 * stand-in server (packages/client/test) covers transport faults only.
 */
import { randomBytes } from "node:crypto"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { BrokerClient } from "@token-broker/client"
import { type DevIdp, type DevIdpUser, startDevIdp } from "@token-broker/dev-idp"
import { Redacted } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { RunningBroker } from "../src/Broker.js"
import { finishConsent, startPortZeroBroker } from "./support/portZeroBroker.js"
import { CALLERS, MCP_AUDIENCE } from "./support/stack.js"

const ALICE: DevIdpUser = {
  sub: "u-report-alice",
  username: "report-alice",
  password: randomBytes(12).toString("base64url"),
  name: "Alice",
  email: "report-alice@example.test"
}

let idp: DevIdp
let dir: string
let broker: RunningBroker

beforeAll(async () => {
  idp = await startDevIdp({
    mcpAudience: MCP_AUDIENCE,
    users: [ALICE],
    redirectUris: ["http://broker.example.test/connect/callback"]
  })
  dir = await mkdtemp(join(tmpdir(), "tb-report-"))
  broker = await startPortZeroBroker({
    idp,
    sqliteFile: join(dir, "grants.db"),
    key: { kid: "k1", material: randomBytes(32).toString("base64") },
    callers: [{ caller: CALLERS.agent, backgroundTokens: true, grants: "manage" }]
  })
})

afterAll(async () => {
  await broker?.close()
  await idp?.close()
  if (dir !== undefined) await rm(dir, { recursive: true, force: true })
})

describe("the client reports a refused token to the real broker", () => {
  it("drops the token: the next call refreshes; a token already replaced is not counted", async () => {
    const client = BrokerClient.make({
      url: broker.url,
      clientId: CALLERS.agent.id,
      clientSecret: Redacted.make(CALLERS.agent.secret)
    })
    const started = await client.authorize({ subject: ALICE.sub, provider: "notes" })
    expect(await finishConsent(broker, idp, started.authorizationUrl, ALICE)).toBe(200)

    const first = await client.backgroundToken({ subject: ALICE.sub, provider: "notes" })
    const again = await client.backgroundToken({ subject: ALICE.sub, provider: "notes" })
    expect(again.source).not.toBe("refresh")
    const refreshes = idp.counters.count({ grantType: "refresh_token" })

    const after = await client.reportRejected({
      subject: ALICE.sub,
      provider: "notes",
      accessToken: first.accessToken
    })
    expect(after?.subject).toBe(ALICE.sub)
    expect(after?.status).toBe("active")
    expect(after?.lastErrorCode).not.toBeNull()

    const next = await client.backgroundToken({ subject: ALICE.sub, provider: "notes" })
    expect(next.source).toBe("refresh")
    expect(idp.counters.count({ grantType: "refresh_token" })).toBe(refreshes + 1)
    expect(Redacted.value(next.accessToken)).not.toBe(Redacted.value(first.accessToken))

    // the old token again: already replaced, so it changes nothing and the new one stays served
    const stale = await client.reportRejected({
      subject: ALICE.sub,
      provider: "notes",
      accessToken: first.accessToken
    })
    expect(stale?.version).toBeDefined()
    const still = await client.backgroundToken({ subject: ALICE.sub, provider: "notes" })
    expect(still.source).not.toBe("refresh")
    expect(idp.counters.count({ grantType: "refresh_token" })).toBe(refreshes + 1)
    expect(Redacted.value(still.accessToken)).toBe(Redacted.value(next.accessToken))

    // no grant: nothing to report on
    expect(
      await client.reportRejected({ subject: "u-nobody", provider: "notes", accessToken: first.accessToken })
    ).toBeUndefined()
  })
})
