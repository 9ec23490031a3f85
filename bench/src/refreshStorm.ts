/**
 * Refresh storm: 10,000 subjects whose access tokens all expired at once, each asked for once, all at
 * the same moment, through one broker process with a cap on concurrent refreshes
 * (`maxConcurrentRefreshes`). Measured: every call served, exactly one refresh per grant at dev-idp, the
 * peak number of refresh requests in flight at dev-idp (counted by a proxy in front of it: it must stay
 * within the cap), and the latency of each call (p50, p99).
 *
 * Baseline (same run, same broker process, same store): one refresh alone - the median latency of 20
 * sequential `backgroundToken` calls on expired grants. The storm's p50/p99 as a multiple of it says how
 * much queueing behind the cap costs a caller; the throughput ratio (storm refreshes per second over
 * 1 / single-refresh latency) says how much the cap's parallelism gains over refreshing one at a time.
 *
 * Provisioning 10,000 grants the honest way (a login and consent per grant at dev-idp) takes about 20 ms
 * per login here, over 3 minutes. Instead: 100 dev-idp users log in once each (a real authorization
 * code flow), and each login's refresh token is presented 100 times within dev-idp's reuse grace period
 * (600 s in this bench), which answers each time with a new, independent refresh token of that grant -
 * 10,000 live refresh tokens, each stored encrypted under its own subject (identity: the user who
 * logged in, as identityBinding "any" allows). The storm presents each of them exactly once, so the grace
 * period changes nothing in what is measured; the bench checks dev-idp saw exactly one refresh per grant
 * (a double refresh would not be hidden by the grace period: it would be counted).
 *
 *   pnpm --filter @token-broker/bench exec tsx src/refreshStorm.ts   (BENCH_STORM_SUBJECTS, BENCH_STORM_CAP)
 */
import { randomBytes } from "node:crypto"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { type GrantKey, GrantStore, KeyRing, newGrantRecord } from "@token-broker/core"
import { startDevIdp } from "@token-broker/dev-idp"
import { Effect, Layer, ManagedRuntime, Redacted } from "effect"
import { killAllChaosWorkers, startChaosWorker } from "../chaos/harness.js"
import { plainProvider } from "../test/support/provisioning.js"
import type { RevealedOutcome, StormResult } from "../test/support/workerProtocol.js"
import { migrateStore, type StoreSpec, storeLayer } from "./StoreSpec.js"
import { startUpstreamProxy } from "./upstreamProxy.js"

const SUBJECTS = Number(process.env.BENCH_STORM_SUBJECTS ?? 10_000)
const CAP = Number(process.env.BENCH_STORM_CAP ?? 32)
const USERS = Math.min(100, SUBJECTS)
const BASELINE_CALLS = 20
const PROVIDER = "notes"

const percentile = (sorted: ReadonlyArray<number>, p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0

/** Runs `task` over `items` with at most `limit` at once. */
const pool = async <A, B>(
  items: ReadonlyArray<A>,
  limit: number,
  task: (item: A, i: number) => Promise<B>
) => {
  const out: Array<B> = new Array(items.length)
  let next = 0
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) {
        const i = next++
        out[i] = await task(items[i] as A, i)
      }
    })
  )
  return out
}

const started = Date.now()
const users = Array.from({ length: USERS }, (_, i) => ({
  sub: `u-storm-${i}`,
  username: `storm${i}`,
  password: randomBytes(12).toString("base64url")
}))
const idp = await startDevIdp({ users, refreshTokenReuseGraceSeconds: 600 })
const proxy = await startUpstreamProxy(idp.issuer)
const dir = mkdtempSync(join(tmpdir(), "tb-storm-"))
const spec: StoreSpec = { kind: "sqlite", options: { filename: join(dir, "grants.db") } }
try {
  await Effect.runPromise(migrateStore(spec))
  const material = randomBytes(32).toString("base64")
  const runtime = ManagedRuntime.make(
    Layer.mergeAll(
      storeLayer(spec),
      KeyRing.layerLocal({ keys: [Effect.runSync(KeyRing.decodeKey("storm", Redacted.make(material)))] })
    )
  )
  const provider = plainProvider(idp, 60_000)
  const basic = `Basic ${Buffer.from(`${encodeURIComponent(provider.clientId)}:${encodeURIComponent(provider.clientSecret)}`).toString("base64")}`
  const refreshAt = async (refreshToken: string) => {
    const response = await fetch(`${idp.issuer}/token`, {
      method: "POST",
      headers: { authorization: basic, "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({
        grant_type: "refresh_token",
        refresh_token: refreshToken,
        resource: provider.resource
      })
    })
    const body = (await response.json()) as {
      refresh_token?: string
      scope?: string
      refresh_expires_in?: number
    }
    if (response.status !== 200 || body.refresh_token === undefined)
      throw new Error(`provisioning refresh answered ${response.status}`)
    return body
  }

  // 1. provisioning: one login per user, then branches of its refresh token within the grace period
  const t0 = Date.now()
  const logins = await pool(users, 8, (user) =>
    idp.login({
      clientId: provider.clientId,
      username: user.username,
      password: user.password,
      scopes: ["openid", "offline_access", "notes:read", "notes:write"],
      resource: provider.resource
    })
  )
  const loginMs = Date.now() - t0
  const subjects = Array.from(
    { length: SUBJECTS + BASELINE_CALLS },
    (_, i) => `storm-${String(i).padStart(6, "0")}`
  )
  const now = Date.now()
  const records = await pool(subjects, 32, async (subject, i) => {
    const owner = i % USERS
    const login = logins[owner]
    if (login?.refresh_token === undefined) throw new Error("a login gave no refresh token")
    const branch = await refreshAt(login.refresh_token)
    const key: GrantKey = { tenant: "default", subject, provider: PROVIDER }
    const scopes = (branch.scope ?? "notes:read notes:write").split(" ")
    return runtime.runPromise(
      Effect.gen(function* () {
        const keyRing = yield* KeyRing.KeyRing
        return newGrantRecord(
          {
            ...key,
            refreshToken: yield* keyRing.encrypt(
              Redacted.make(branch.refresh_token ?? ""),
              KeyRing.aadFor(key, "refresh_token")
            ),
            // the access token expired a second ago: every grant needs a refresh at once
            accessToken: {
              envelope: yield* keyRing.encrypt(Redacted.make("expired"), KeyRing.aadFor(key, "access_token")),
              expiresAt: now - 1_000,
              scopes,
              audience: provider.resource
            },
            scopes,
            refreshTokenExpiresAt:
              branch.refresh_expires_in === undefined ? null : now + branch.refresh_expires_in * 1000,
            identity: { issuer: idp.issuer, subject: users[owner]?.sub ?? "" }
          },
          now
        )
      })
    )
  })
  await runtime.runPromise(
    Effect.flatMap(GrantStore.GrantStore, (store) =>
      Effect.forEach(records, (record) => store.insert(record), { discard: true })
    )
  )
  await runtime.dispose()
  const provisionMs = Date.now() - t0
  console.log(
    `provisioned ${records.length} grants in ${(provisionMs / 1000).toFixed(1)} s (${USERS} logins in ${(loginMs / 1000).toFixed(1)} s, then refresh-token branches)`
  )

  // 2. one broker process, capped, reaching dev-idp through the counting proxy
  const worker = await startChaosWorker({
    store: spec,
    provider,
    keys: [{ kid: "storm", material }],
    broker: { instanceId: "storm", leaseTtlMs: 120_000, leaseWaitMs: 120_000 },
    internalBaseUrl: proxy.url,
    maxConcurrentRefreshes: CAP
  })

  // 3. baseline: one refresh alone, BASELINE_CALLS times in a row
  const single: Array<number> = []
  for (const subject of subjects.slice(SUBJECTS)) {
    const result = await worker.request<RevealedOutcome>({ kind: "token", subject })
    if (!result.ok || result.source !== "refresh")
      throw new Error(`baseline call failed: ${JSON.stringify(result)}`)
    single.push(result.endedAt - result.startedAt)
  }
  single.sort((a, b) => a - b)
  const singleMs = Math.max(1, percentile(single, 50))

  // 4. the storm
  idp.counters.reset()
  proxy.resetPeak()
  const storm = await worker.request<StormResult>({ kind: "storm", subjects: subjects.slice(0, SUBJECTS) })
  const refreshRequests = idp.counters.count({ grantType: "refresh_token" })
  await worker.kill()
  const sorted = [...storm.latenciesMs].sort((a, b) => a - b)
  const p50 = percentile(sorted, 50)
  const p99 = percentile(sorted, 99)
  const throughput = SUBJECTS / (storm.wallMs / 1000)
  const result = {
    name: "refresh-storm",
    subjects: SUBJECTS,
    cap: CAP,
    served: storm.ok,
    failures: storm.failures,
    distinctTokens: storm.distinctTokens,
    refreshRequests,
    peakInFlightAtDevIdp: proxy.peak(),
    p50Ms: p50,
    p99Ms: p99,
    wallMs: storm.wallMs,
    refreshesPerSecond: Math.round(throughput),
    baseline: { singleRefreshMedianMs: singleMs, calls: BASELINE_CALLS },
    ratios: {
      p50: Number((p50 / singleMs).toFixed(1)),
      p99: Number((p99 / singleMs).toFixed(1)),
      throughput: Number((throughput / (1000 / singleMs)).toFixed(1))
    },
    provisioning: { grants: records.length, logins: USERS, seconds: Number((provisionMs / 1000).toFixed(1)) },
    totalSeconds: Math.round((Date.now() - started) / 1000)
  }
  const ok =
    storm.ok === SUBJECTS &&
    refreshRequests === SUBJECTS &&
    storm.distinctTokens === SUBJECTS &&
    proxy.peak() <= CAP
  console.log(
    `refresh storm: ${storm.ok}/${SUBJECTS} served, ${refreshRequests} refresh requests at dev-idp, ` +
      `peak ${proxy.peak()} in flight (cap ${CAP}); p50 ${p50} ms, p99 ${p99} ms, wall ${storm.wallMs} ms ` +
      `(${result.refreshesPerSecond} refreshes/s); one refresh alone: ${singleMs} ms ` +
      `-> p50 x${result.ratios.p50}, p99 x${result.ratios.p99}, throughput x${result.ratios.throughput}`
  )
  console.log(`BENCH_JSON ${JSON.stringify({ ...result, ok })}`)
  if (!ok) process.exitCode = 1
} finally {
  await killAllChaosWorkers()
  await proxy.close()
  await idp.close()
  rmSync(dir, { recursive: true, force: true })
}
