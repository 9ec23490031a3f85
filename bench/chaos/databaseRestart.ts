/**
 * The database restarted under load: a private PostgreSQL cluster or MariaDB server (never the machine's
 * shared servers) stopped - `pg_ctl -m fast`, or SIGTERM to mariadbd, either way every connection is
 * dropped - and started again while three broker
 * processes keep asking for tokens whose access tokens are refreshed every few seconds. Expected: every
 * call gets a still-valid token or a typed retryable error (StorageUnavailable / UpstreamUnavailable),
 * never a wrong token; afterwards every grant yields tokens again. The one loss that cannot be avoided:
 * with reuse grace 0, a refresh that dev-idp answered just before the database went away and whose
 * write could not land (the rotated token existed only in memory); it must then be reported as
 * ConsentRequired `rotation_lost`. With a grace period nothing may be lost.
 */
import { randomBytes } from "node:crypto"
import { startDevIdp } from "@token-broker/dev-idp"
import { startPrivateServer } from "@token-broker/storage-mysql/testing"
import { startPrivateCluster } from "@token-broker/storage-postgres/testing"
import { Effect } from "effect"
import { describeStore, migrateStore, type StoreKind, type StoreSpec } from "../src/StoreSpec.js"
import { benchUsers, startProvisioner } from "../test/support/provisioning.js"
import type { RevealedOutcome, WorkerInit } from "../test/support/workerProtocol.js"
import { killAllChaosWorkers, retireProvisioner, sleep, startChaosWorker } from "./harness.js"
import { runLoad, startLoadWorkers } from "./load.js"
import { type ChaosContext, type ScenarioRow, say } from "./report.js"
import { tokenChecker } from "./tokenChecks.js"

const NAME = "database restarted under load"
const WORKERS = 3
const GRANTS = 12

/** A database server of our own that the scenario may really stop and start, and the store spec on it. */
interface RestartableDatabase {
  readonly label: string
  readonly spec: StoreSpec
  readonly stop: () => Promise<void>
  readonly start: () => Promise<void>
  readonly destroy: () => Promise<void>
}

const RESTARTABLE: Partial<Record<StoreKind, () => Promise<RestartableDatabase>>> = {
  postgres: async () => {
    const cluster = await startPrivateCluster()
    return {
      label: "postgres (private cluster)",
      spec: {
        kind: "postgres",
        options: {
          url: cluster.url,
          schema: `tb_chaos_${randomBytes(4).toString("hex")}`,
          poolSize: 4,
          connectTimeout: "2 seconds"
        }
      },
      stop: async () => cluster.stop(),
      start: async () => cluster.start(),
      destroy: async () => cluster.destroy()
    }
  },
  mysql: async () => {
    const server = await startPrivateServer()
    return {
      label: "mysql (MariaDB, private server)",
      spec: {
        kind: "mysql",
        options: {
          url: server.url(`tb_chaos_${randomBytes(4).toString("hex")}`),
          poolSize: 4,
          connectTimeout: "2 seconds"
        }
      },
      stop: server.stop,
      start: server.start,
      destroy: server.destroy
    }
  }
}

export const databaseRestart = async (ctx: ChaosContext): Promise<Array<ScenarioRow>> => {
  const rows: Array<ScenarioRow> = []
  for (const kind of ctx.backends) {
    const open = RESTARTABLE[kind]
    if (open !== undefined) rows.push(...(await restartUnderLoad(ctx, open)))
  }
  return rows
}

const restartUnderLoad = async (
  ctx: ChaosContext,
  open: () => Promise<RestartableDatabase>
): Promise<Array<ScenarioRow>> => {
  const graces = ctx.short ? [60] : [0, 60]
  const restarts = ctx.short ? 1 : 2
  const rows: Array<ScenarioRow> = []
  const users = benchUsers(GRANTS)
  for (const grace of graces) {
    const database = await open()
    const idp = await startDevIdp({ users, accessTokenTtlSeconds: 12, refreshTokenReuseGraceSeconds: grace })
    const spec = database.spec
    const problems: Array<string> = []
    try {
      await Effect.runPromise(migrateStore(spec))
      const provisioner = await startProvisioner(idp, spec)
      try {
        say(
          NAME,
          `grace ${grace} s; ${describeStore(spec)}; ${WORKERS} broker processes, ${GRANTS} grants, ${restarts} restart(s)`
        )
        for (const user of users) await provisioner.connect(user)
        const init = (id: string): WorkerInit => ({
          ...provisioner.workerInit(id, { ttlMs: 5_000, waitMs: 8_000 }),
          earlyRefreshMs: 9_000
        })
        const checker = tokenChecker(idp)
        const workers = await startLoadWorkers(WORKERS, (i) => init(`${spec.kind}-load-${i}`), checker)
        const subjects = users.map((user) => user.sub)
        const cycleMs = 16_000
        const load = runLoad(workers, {
          kind: "load",
          subjects,
          durationMs: restarts * cycleMs + 4_000,
          concurrency: 6,
          pauseMs: 25
        })
        for (let i = 0; i < restarts; i++) {
          await sleep(5_000)
          const before = idp.counters.count({ grantType: "refresh_token" })
          await database.stop()
          const stoppedAt = Date.now()
          await sleep(4_000)
          await database.start()
          say(
            NAME,
            `grace ${grace}: ${database.label} down for ${Date.now() - stoppedAt} ms; ${idp.counters.count({ grantType: "refresh_token" }) - before} refresh requests reached dev-idp meanwhile`
          )
          await sleep(cycleMs - 9_000)
        }
        const { calls, ok, failures } = await load
        say(NAME, `grace ${grace}: ${calls} calls, ${ok} ok, failures ${JSON.stringify(failures)}`)
        const untyped = Object.keys(failures).filter(
          (key) =>
            !key.startsWith("UpstreamUnavailable") &&
            !key.startsWith("StorageUnavailable") &&
            !key.startsWith("ConsentRequired")
        )
        if (untyped.length > 0) problems.push(`untyped or unexpected errors: ${untyped.join(", ")}`)

        const verifier = await startChaosWorker(init(`${spec.kind}-verifier`))
        let lost = 0
        let unavoidable = 0
        for (const subject of subjects) {
          // as the kill scenarios do: the fresh process must refresh (its stored refresh token is the
          // live one) and the grant must read active afterwards; a store-served token proves nothing
          const expired = await provisioner.expireAccessToken(subject).then(
            () => true,
            () => false
          )
          const result = await verifier.request<RevealedOutcome>({ kind: "token", subject })
          if (result.ok) {
            checker.check(subject, result.accessToken, result.endedAt)
            const record = await provisioner.grant(subject)
            if (!expired || result.source !== "refresh" || record.status !== "active") {
              lost++
              problems.push(
                `grant of ${subject} not proven intact: ${expired ? "" : "its access token could not be expired, "}token from ${result.source}, grant ${record.status}${record.lastErrorCode === null ? "" : `/${record.lastErrorCode}`}`
              )
            }
            continue
          }
          lost++
          const reason = `${result.error.tag} ${result.error.reason ?? result.error.code ?? ""}`
          if (
            grace === 0 &&
            result.error.tag === "ConsentRequired" &&
            result.error.reason === "rotation_lost"
          ) {
            unavoidable++
            say(
              NAME,
              `grace 0: the grant of ${subject} lost a rotation while the database was down: ${reason}`
            )
          } else problems.push(`grant of ${subject} not intact: ${reason}`)
        }
        const { checked, wrong } = await checker.settle()
        if (wrong.length > 0) problems.push(`wrong tokens: ${wrong.slice(0, 3).join("; ")}`)
        const consent = Object.entries(failures).filter(([key]) => key.startsWith("ConsentRequired"))
        if (consent.length > 0 && lost === unavoidable && lost === 0)
          problems.push(`ConsentRequired during the run: ${JSON.stringify(consent)}`)
        const typed = Object.entries(failures)
          .map(([key, n]) => `${n} ${key}`)
          .join(", ")
        rows.push({
          scenario: `${NAME}, grace ${grace}s`,
          backend: database.label,
          runs: restarts,
          lost,
          unavoidable,
          wrongTokens: wrong.length,
          ok: problems.length === 0 && lost === unavoidable,
          outcome:
            problems.length === 0
              ? `${calls} calls: ${ok} served${typed === "" ? "" : `, ${typed}`}; ${checked} distinct tokens checked; ${GRANTS - lost}/${GRANTS} grants intact`
              : problems.join("; ")
        })
      } finally {
        await killAllChaosWorkers()
        await retireProvisioner(provisioner, NAME)
      }
    } finally {
      await idp.close()
      await database.destroy()
    }
  }
  return rows
}
