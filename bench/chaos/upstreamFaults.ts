/**
 * dev-idp slow, failing (500), rate limiting (429) and down for a while, under load from several broker
 * processes (refresh-token rotation, reuse detection with no grace period). Access tokens live 12 s and
 * brokers refresh them 9 s early, so every grant is refreshed every few seconds, through every phase.
 * Brokers reach dev-idp through a proxy (`src/upstreamProxy.ts`) that takes it "down" by closing each
 * connection before a byte reaches dev-idp. Expected: every call gets a still-valid token or a typed
 * retryable error (UpstreamUnavailable), never ConsentRequired and never anything untyped; the circuit
 * opens while dev-idp is down and closes after; every grant is intact afterwards.
 */
import { startDevIdp } from "@token-broker/dev-idp"
import { describeStore } from "../src/StoreSpec.js"
import { startUpstreamProxy } from "../src/upstreamProxy.js"
import { prepareBackend } from "../test/support/backends.js"
import { benchUsers, startProvisioner } from "../test/support/provisioning.js"
import type { MetricsSnapshot, RevealedOutcome, WorkerInit } from "../test/support/workerProtocol.js"
import { killAllChaosWorkers, retireProvisioner, sleep, startChaosWorker } from "./harness.js"
import { runLoad, startLoadWorkers } from "./load.js"
import { type ChaosContext, type ScenarioRow, say } from "./report.js"
import { tokenChecker } from "./tokenChecks.js"

const NAME = "dev-idp slow/500/429/down"
const WORKERS = 3
const GRANTS = 12
const CIRCUIT = { failureThreshold: 3, openForMs: 2_000 }

export const upstreamFaults = async (ctx: ChaosContext): Promise<Array<ScenarioRow>> => {
  const backends = ctx.short ? ctx.backends.slice(0, 1) : ctx.backends
  const scale = ctx.short ? 0.6 : 1
  const phases = [
    { name: "normal", ms: 4_000 },
    { name: "slow (1.5 s latency)", ms: 6_000 },
    { name: "500", ms: 5_000 },
    { name: "429 (Retry-After 1)", ms: 5_000 },
    { name: "down", ms: 12_000 },
    { name: "recovered", ms: 8_000 }
  ].map((phase) => ({ ...phase, ms: Math.round(phase.ms * scale) }))
  const total = phases.reduce((sum, phase) => sum + phase.ms, 0)
  const rows: Array<ScenarioRow> = []
  const users = benchUsers(GRANTS)
  for (const kind of backends) {
    // 6 s tokens: the early-refresh margin is at most a quarter of a token's lifetime (1.5 s here), so
    // every grant refreshes about every 4.5 s; the margin stays above the up to 1 s by which a JWT's whole-
    // second exp can precede the expiry the broker derives from expires_in
    const idp = await startDevIdp({ users, accessTokenTtlSeconds: 6, refreshTokenReuseGraceSeconds: 0 })
    const proxy = await startUpstreamProxy(idp.issuer)
    const backend = await prepareBackend(kind)
    const provisioner = await startProvisioner(idp, backend.spec)
    const problems: Array<string> = []
    try {
      say(
        NAME,
        `${describeStore(backend.spec)}; ${WORKERS} broker processes, ${GRANTS} grants; phases ${phases.map((p) => `${p.name} ${p.ms / 1000} s`).join(", ")}`
      )
      for (const user of users) await provisioner.connect(user)
      const init = (id: string): WorkerInit => {
        const base = provisioner.workerInit(id, { ttlMs: 5_000, waitMs: 8_000 })
        return {
          ...base,
          provider: { ...base.provider, requestTimeoutMs: 4_000 },
          internalBaseUrl: proxy.url,
          earlyRefreshMs: 9_000,
          circuit: CIRCUIT,
          retry: { attempts: 3, baseDelayMs: 100, deadlineMs: 3_000 }
        }
      }
      const checker = tokenChecker(idp)
      const workers = await startLoadWorkers(WORKERS, (i) => init(`${kind}-load-${i}`), checker)
      idp.counters.reset()
      const subjects = users.map((user) => user.sub)
      const load = runLoad(workers, {
        kind: "load",
        subjects,
        durationMs: total,
        concurrency: 6,
        pauseMs: 25
      })
      let downEndedAt = 0
      for (const phase of phases) {
        const refreshesBefore = idp.counters.count({ grantType: "refresh_token" })
        switch (phase.name) {
          case "slow (1.5 s latency)":
            idp.faults.inject({ kind: "latency", ms: 1_500, count: 1_000_000, grantType: "refresh_token" })
            break
          case "500":
            idp.faults.inject({ kind: "status", status: 500, count: 1_000_000, grantType: "refresh_token" })
            break
          case "429 (Retry-After 1)":
            idp.faults.inject({
              kind: "rate_limit",
              retryAfterSeconds: 1,
              count: 1_000_000,
              grantType: "refresh_token"
            })
            break
          case "down":
            proxy.setDown(true)
            break
        }
        await sleep(phase.ms)
        idp.faults.clear()
        if (phase.name === "down") {
          proxy.setDown(false)
          downEndedAt = Date.now()
        }
        say(
          NAME,
          `${kind}: phase ${phase.name}: ${idp.counters.count({ grantType: "refresh_token" }) - refreshesBefore} refresh requests reached dev-idp` +
            (phase.name === "down" ? `, ${proxy.refused()} refused by the proxy` : "")
        )
      }
      const { results, calls, ok, failures } = await load
      const metrics = (
        await Promise.all(workers.map((w) => w.request<MetricsSnapshot>({ kind: "metrics" })))
      ).flat()
      const circuitOpened = metrics
        .filter((m) => m.name === "circuit_open_total")
        .reduce((sum, m) => sum + m.value, 0)
      const refreshedAfterRecovery = results.filter(
        // after the proxy came back: the circuit, opened while dev-idp was down, let refreshes through again.
        // Not "openForMs after the end": the circuit's last opening (a failed half-open probe) can come at
        // any point of the down phase, so it may close well before openForMs has passed since the end.
        (r) => r.lastRefreshAt !== null && r.lastRefreshAt > downEndedAt
      ).length
      say(
        NAME,
        `${kind}: ${calls} calls, ${ok} ok, failures ${JSON.stringify(failures)}; circuit opened ${circuitOpened} time(s); ` +
          `${refreshedAfterRecovery}/${WORKERS} processes refreshed again after it closed`
      )
      const lostGrants = Object.entries(failures).filter(([key]) => key.startsWith("ConsentRequired"))
      const untyped = Object.keys(failures).filter(
        (key) => !key.startsWith("UpstreamUnavailable") && !key.startsWith("ConsentRequired")
      )
      if (untyped.length > 0) problems.push(`untyped or unexpected errors: ${untyped.join(", ")}`)
      if (circuitOpened === 0) problems.push("the circuit never opened")
      if (refreshedAfterRecovery === 0)
        problems.push("no refresh succeeded after dev-idp came back: the circuit never closed")

      // every grant intact: a fresh process refreshes each one
      const verifier = await startChaosWorker(init(`${kind}-verifier`))
      let lost = 0
      for (const subject of subjects) {
        await provisioner.expireAccessToken(subject)
        const result = await verifier.request<RevealedOutcome>({ kind: "token", subject })
        if (result.ok) checker.check(subject, result.accessToken, result.endedAt)
        const record = await provisioner.grant(subject)
        if (!result.ok || record.status !== "active") {
          lost++
          problems.push(
            `grant of ${subject} not intact: ${result.ok ? record.status : `${result.error.tag} ${result.error.reason}`}`
          )
        }
      }
      if (lostGrants.length > 0 && lost === 0)
        problems.push(`ConsentRequired during the run: ${JSON.stringify(lostGrants)}`)
      const { checked, wrong } = await checker.settle()
      if (wrong.length > 0) problems.push(`wrong tokens: ${wrong.slice(0, 3).join("; ")}`)
      rows.push({
        scenario: NAME,
        backend: kind,
        runs: 1,
        lost,
        unavoidable: 0,
        wrongTokens: wrong.length,
        ok: problems.length === 0,
        outcome:
          problems.length === 0
            ? `${calls} calls: ${ok} served, ${calls - ok} typed UpstreamUnavailable; circuit opened ${circuitOpened}x and closed; ${checked} distinct tokens checked; ${GRANTS}/${GRANTS} grants intact`
            : problems.join("; ")
      })
    } finally {
      await killAllChaosWorkers()
      await retireProvisioner(provisioner, NAME)
      await backend.cleanup()
      await proxy.close()
      await idp.close()
    }
  }
  return rows
}
