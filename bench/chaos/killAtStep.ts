/**
 * A broker process SIGKILLed at each step of a refresh, while it holds the grant's lease:
 * - before_upstream: the refresh marker is stored, nothing was sent: the next broker (once the lease
 *   expired) refreshes with the stored token; the grant stays.
 * - after_upstream: dev-idp rotated the refresh token and the answer died with the process. With reuse
 *   grace 0 the stored token is now a reused one: dev-idp revokes the grant, and the next broker must
 *   say so as ConsentRequired `rotation_lost` (physically unavoidable: the only copy of the new token
 *   was in the killed process). With a grace period the stored token still works: nothing is lost.
 * - after_write: the result is stored: the next broker serves the stored token.
 * Every served token is checked; "intact" is proved by expiring the access token again and getting a
 * fresh one through another process.
 */
import { startDevIdp } from "@token-broker/dev-idp"
import { describeStore } from "../src/StoreSpec.js"
import { prepareBackend } from "../test/support/backends.js"
import { benchUsers, startProvisioner } from "../test/support/provisioning.js"
import {
  killAllChaosWorkers,
  retireProvisioner,
  startChaosWorker,
  waitUntil,
  wrongTokenReason
} from "./harness.js"
import type { RefreshStep, TokenResult } from "./protocol.js"
import { type ChaosContext, type ScenarioRow, say } from "./report.js"

const STEPS: ReadonlyArray<RefreshStep> = ["before_upstream", "after_upstream", "after_write"]
const LEASE = { ttlMs: 2_000, waitMs: 15_000 }
const NAME = "kill -9 at step"

const describe = (result: TokenResult) =>
  result.ok
    ? `ok (${result.source})`
    : `${result.error.tag} ${result.error.reason ?? result.error.code ?? ""}`

export const killAtStep = async (ctx: ChaosContext): Promise<Array<ScenarioRow>> => {
  const runs = ctx.short ? 1 : 3
  const graces = [0, 30]
  const rows: Array<ScenarioRow> = []
  const users = benchUsers(STEPS.length * runs * ctx.backends.length + 1)
  for (const grace of graces) {
    const idp = await startDevIdp({ users, refreshTokenReuseGraceSeconds: grace })
    let nextUser = 0
    try {
      for (const kind of ctx.backends) {
        const backend = await prepareBackend(kind)
        const provisioner = await startProvisioner(idp, backend.spec)
        try {
          say(NAME, `grace ${grace} s, ${describeStore(backend.spec)}`)
          const [taker, checker] = await Promise.all([
            startChaosWorker({ base: provisioner.workerInit(`${kind}-taker`, LEASE) }),
            startChaosWorker({ base: provisioner.workerInit(`${kind}-checker`, LEASE) })
          ])
          for (const step of STEPS) {
            let lost = 0
            let unavoidable = 0
            let wrong = 0
            const problems: Array<string> = []
            const endings = new Map<string, number>()
            for (let run = 0; run < runs; run++) {
              const user = users[nextUser++]
              if (user === undefined) throw new Error("not enough dev-idp users")
              const subject = user.sub
              await provisioner.connect(user)
              await provisioner.expireAccessToken(subject)
              let stopped = false
              const victim = await startChaosWorker(
                { base: provisioner.workerInit(`${kind}-victim-${step}-${run}`, LEASE), stopAt: step },
                { onStep: () => (stopped = true) }
              )
              victim.request({ kind: "token", subject }).catch(() => undefined)
              await waitUntil(() => stopped, 30_000, `the victim reached ${step}`)
              await victim.kill()
              const killedAt = Date.now()
              const first = await taker.request<TokenResult>({ kind: "token", subject })
              const check = async (result: TokenResult) => {
                if (!result.ok) return
                const reason = await wrongTokenReason(idp, subject, result.accessToken, result.endedAt)
                if (reason !== undefined) {
                  wrong++
                  problems.push(`wrong token: ${reason}`)
                }
              }
              await check(first)
              const lossExpected = step === "after_upstream" && grace === 0
              let ending: string
              if (first.ok) {
                // intact: a new expiry, a refresh through a process that never saw this grant
                await provisioner.expireAccessToken(subject)
                const again = await checker.request<TokenResult>({ kind: "token", subject })
                await check(again)
                const record = await provisioner.grant(subject)
                if (!again.ok || again.source !== "refresh" || record.status !== "active") {
                  lost++
                  problems.push(`grant not intact after ${describe(first)}: then ${describe(again)}`)
                }
                if (lossExpected) problems.push("expected rotation_lost, got a token")
                const expectedSource = step === "after_write" ? "store" : "refresh"
                if (first.source !== expectedSource)
                  problems.push(`first token from ${first.source}, expected ${expectedSource}`)
                ending = `${describe(first)}, intact`
              } else {
                lost++
                const again = await checker.request<TokenResult>({ kind: "token", subject })
                const record = await provisioner.grant(subject)
                const reported =
                  first.error.tag === "ConsentRequired" &&
                  first.error.reason === "rotation_lost" &&
                  !again.ok &&
                  again.error.tag === "ConsentRequired" &&
                  again.error.reason === "rotation_lost" &&
                  record.status === "reconsent_required" &&
                  record.lastErrorCode === "rotation_lost"
                // the record is marked, not corrupted: it still decrypts
                const decrypts = await provisioner.decrypt(record).then(
                  () => true,
                  () => false
                )
                if (lossExpected && reported && decrypts) unavoidable++
                else
                  problems.push(
                    `${describe(first)} then ${describe(again)}, grant ${record.status}/${record.lastErrorCode}` +
                      `${decrypts ? "" : ", record no longer decrypts"}${lossExpected ? "" : " (no loss expected)"}`
                  )
                ending = `${describe(first)}`
              }
              endings.set(ending, (endings.get(ending) ?? 0) + 1)
              say(
                NAME,
                `${kind} grace ${grace}: killed at ${step}; the next broker answered after ${first.endedAt - killedAt} ms: ${ending}`
              )
            }
            rows.push({
              scenario: `${NAME} ${step}, grace ${grace}s`,
              backend: kind,
              runs,
              lost,
              unavoidable,
              wrongTokens: wrong,
              ok: problems.length === 0 && lost === unavoidable && wrong === 0,
              outcome:
                problems.length === 0
                  ? [...endings].map(([text, n]) => `${n}x ${text}`).join("; ")
                  : problems.join("; ")
            })
          }
        } finally {
          await killAllChaosWorkers()
          await retireProvisioner(provisioner, NAME)
          await backend.cleanup()
        }
      }
    } finally {
      await idp.close()
    }
  }
  return rows
}
