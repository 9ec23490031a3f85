import { Redacted } from "effect"
import { describe, expect, it } from "vitest"
import { describeStore, type StoreKind } from "../src/StoreSpec.js"
import { ALL_BACKENDS } from "./support/backends.js"
import { tokenHash } from "./support/provider.js"
import { benchUsers, type Provisioner } from "./support/provisioning.js"
import { suiteSetup } from "./support/suiteSetup.js"
import type { BurstResult, WorkerInit } from "./support/workerProtocol.js"
import { devIdpForWorkers, provisionedStore } from "./support/workerSuite.js"
import { startWorker, type Worker } from "./support/workers.js"

const WORKERS = 4
const CALLS_PER_WORKER = 250
const GRANTS = 20
// user 0 for the one-grant round, users 1..20 for the twenty-grant round, the last for the control
const users = benchUsers(1 + GRANTS + 1)

const idp = devIdpForWorkers({ users, refreshTokenReuseGraceSeconds: 0 })

const refreshRequests = () => idp().counters.count({ grantType: "refresh_token" })

interface RoundReport {
  readonly refreshes: number
  readonly ok: number
  readonly failed: Record<string, number>
  /** Which process, grant and error, with the time since "go": for the report when something failed. */
  readonly failures: Array<string>
  readonly bySubject: Map<string, { ok: number; tokens: Set<string>; sources: Record<string, number> }>
  readonly wallMs: number
}

/** Sends "go" to every worker at once and adds up what they report. */
const fire = async (
  workers: ReadonlyArray<Worker>,
  subjects: ReadonlyArray<string>
): Promise<RoundReport> => {
  idp().counters.reset()
  const started = performance.now()
  const results = await Promise.all(
    workers.map((worker) =>
      worker.request<BurstResult>({ kind: "burst", subjects, callsPerSubject: CALLS_PER_WORKER })
    )
  )
  const wallMs = Math.round(performance.now() - started)
  const bySubject = new Map<string, { ok: number; tokens: Set<string>; sources: Record<string, number> }>()
  const failed: Record<string, number> = {}
  const failures: Array<string> = []
  let ok = 0
  for (const result of results) {
    for (const outcome of result.subjects) {
      const entry = bySubject.get(outcome.subject) ?? { ok: 0, tokens: new Set<string>(), sources: {} }
      entry.ok += outcome.ok
      ok += outcome.ok
      for (const hash of Object.keys(outcome.tokens)) entry.tokens.add(hash)
      for (const [source, n] of Object.entries(outcome.sources)) {
        entry.sources[source] = (entry.sources[source] ?? 0) + n
      }
      for (const [failure, n] of Object.entries(outcome.failures)) {
        failed[failure] = (failed[failure] ?? 0) + n
        const first = outcome.firstFailure[failure]
        failures.push(
          `pid ${result.pid} ${outcome.subject}: ${n} x ${failure}, the first ${first === undefined ? "?" : first.at - result.startedAt} ms after go: ${first?.message}`
        )
      }
      bySubject.set(outcome.subject, entry)
    }
  }
  return { refreshes: refreshRequests(), ok, failed, failures, bySubject, wallMs }
}

const print = (label: string, report: RoundReport, calls: number) => {
  const sources: Record<string, number> = {}
  const tokens = new Set<string>()
  for (const entry of report.bySubject.values()) {
    for (const hash of entry.tokens) tokens.add(hash)
    for (const [source, n] of Object.entries(entry.sources)) sources[source] = (sources[source] ?? 0) + n
  }
  console.log(
    `[cross-process single flight] ${label}: ${report.refreshes} refresh request(s) reached dev-idp; ` +
      `${report.ok}/${calls} calls ok; ${Object.keys(report.failed).length === 0 ? "no failures" : `failures ${JSON.stringify(report.failed)}`}; ` +
      `${tokens.size} distinct token(s); sources ${JSON.stringify(sources)}; wall ${report.wallMs} ms` +
      report.failures.map((line) => `\n  ${line}`).join("")
  )
}

/**
 * A fresh store, the test's own provisioning broker with `subjects` connected, and WORKERS broker
 * processes ready for "go".
 *
 * Every grant is connected here, before any burst, so that no worker's pooled connection to dev-idp sits
 * idle for seconds between two bursts. An idle keep-alive connection that dev-idp closes (after 5 s)
 * just as a worker sends its refresh on it fails that refresh with "other side closed" before dev-idp
 * reads it; core reports that as UpstreamUnavailable (reason `network`) to all 250 calls coalesced on it
 * (seen here on a loaded machine: 500 of 20,000 calls, 20 refreshes, no grant harmed). That is a finding
 * about core's HTTP client, not what this test measures; see the bench README.
 */
const cluster = (
  kind: StoreKind,
  subjects: ReadonlyArray<(typeof users)[number]>,
  control?: WorkerInit["control"]
) =>
  suiteSetup(120_000, async (defer) => {
    const { spec, provisioner } = await provisionedStore(kind, idp(), defer)
    for (const user of subjects) await provisioner.connect(user)
    const workers = await Promise.all(
      Array.from({ length: WORKERS }, async (_, i) => {
        const worker = await startWorker(
          provisioner.workerInit(`${control ?? kind}-worker-${i}`, { ttlMs: 30_000, waitMs: 20_000 }, control)
        )
        defer(worker.kill)
        return worker
      })
    )
    console.log(
      `[cross-process single flight] ${describeStore(spec)}${control === undefined ? "" : ` (${control})`}; ` +
        `worker pids ${workers.map((w) => w.pid).join(", ")}`
    )
    return { provisioner, workers }
  })

/** Expires the grants' access tokens and returns their versions just before the burst. */
const expire = async (provisioner: Provisioner, subjects: ReadonlyArray<(typeof users)[number]>) => {
  const versions = new Map<string, number>()
  for (const user of subjects) {
    versions.set(user.sub, (await provisioner.expireAccessToken(user.sub)).version)
  }
  return versions
}

/** What a single refresh leaves in the store: two writes (marker, result), active, the served token. */
const expectOneRefreshStored = async (
  provisioner: Provisioner,
  subject: string,
  versionBefore: number | undefined,
  served: ReadonlySet<string> | undefined
) => {
  const record = await provisioner.grant(subject)
  expect({ subject, writes: record.version - (versionBefore ?? Number.NaN) }).toEqual({ subject, writes: 2 })
  expect(record.status).toBe("active")
  expect(record.refreshStartedAt).toBeNull()
  expect(record.failureCount).toBe(0)
  const { accessToken } = await provisioner.decrypt(record)
  // the token every call was served is the one stored for the other replicas
  expect(accessToken === null ? null : [tokenHash(Redacted.value(accessToken))]).toEqual([...(served ?? [])])
}

describe.each(ALL_BACKENDS)("%s store shared by 4 broker processes", (kind) => {
  const setup = cluster(kind, users.slice(0, 1 + GRANTS))

  it("one expired grant, 4 processes x 250 concurrent calls: one refresh reaches dev-idp, 1,000 calls get the same token", async () => {
    const { provisioner, workers } = await setup()
    const user = users[0]
    if (user === undefined) throw new Error("no user")
    const versions = await expire(provisioner, [user])
    const report = await fire(workers, [user.sub])
    print(`${kind}, 1 grant`, report, WORKERS * CALLS_PER_WORKER)

    expect(report.failed).toEqual({})
    expect(report.ok).toBe(WORKERS * CALLS_PER_WORKER)
    expect(report.refreshes).toBe(1)
    const entry = report.bySubject.get(user.sub)
    expect(entry?.tokens.size).toBe(1)
    expect(entry?.sources.refresh).toBeGreaterThanOrEqual(1)
    await expectOneRefreshStored(provisioner, user.sub, versions.get(user.sub), entry?.tokens)
  }, 180_000)

  it("20 expired grants at once, 4 processes x 250 calls each: 20 refreshes, 20,000 calls succeed", async () => {
    const { provisioner, workers } = await setup()
    const subjects = users.slice(1, 1 + GRANTS)
    const versions = await expire(provisioner, subjects)
    const report = await fire(
      workers,
      subjects.map((u) => u.sub)
    )
    print(`${kind}, ${GRANTS} grants`, report, GRANTS * WORKERS * CALLS_PER_WORKER)

    expect(report.failed).toEqual({})
    expect(report.ok).toBe(GRANTS * WORKERS * CALLS_PER_WORKER)
    expect(report.refreshes).toBe(GRANTS)
    const allTokens = new Set<string>()
    for (const user of subjects) {
      const entry = report.bySubject.get(user.sub)
      expect({ subject: user.sub, ok: entry?.ok, tokens: entry?.tokens.size }).toEqual({
        subject: user.sub,
        ok: WORKERS * CALLS_PER_WORKER,
        tokens: 1
      })
      for (const hash of entry?.tokens ?? []) allTokens.add(hash)
      await expectOneRefreshStored(provisioner, user.sub, versions.get(user.sub), entry?.tokens)
    }
    expect(allTokens.size).toBe(GRANTS)
  }, 90_000)
})

/**
 * The control: the same burst on SQLite with workers whose lease excludes nothing (every acquire
 * succeeds), i.e. brokers with in-process locks only. The detectors above must see it: more than one
 * refresh reaches dev-idp. If this ever passes with one refresh, the tests above prove nothing.
 */
describe("control: 4 broker processes whose lease excludes nothing", () => {
  const setup = cluster("sqlite", users.slice(1 + GRANTS), "lease-excludes-nothing")

  it("more than one refresh reaches dev-idp for one expired grant", async () => {
    const { provisioner, workers } = await setup()
    const user = users[1 + GRANTS]
    if (user === undefined) throw new Error("no user")
    await expire(provisioner, [user])
    const report = await fire(workers, [user.sub])
    print("control (sqlite, lease excludes nothing), 1 grant", report, WORKERS * CALLS_PER_WORKER)
    expect(report.refreshes).toBeGreaterThan(1)
  }, 180_000)
})
