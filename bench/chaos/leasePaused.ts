/**
 * A lease holder paused (SIGSTOP) in the middle of a refresh until its lease expired, another broker
 * refreshing meanwhile, then the holder resumed (SIGCONT): its late write must be fenced off by the
 * version compare-and-set, and the newer refresh token (the taker's) must stay stored.
 * - paused after_upstream (the case: dev-idp answered the holder, the write is late). The taker
 *   presents the refresh token the holder already rotated: with a grace period dev-idp accepts it and
 *   the taker's token is the newer one; with grace 0 the taker's ConsentRequired `rotation_lost` is the
 *   physically unavoidable end (the only live token is in a frozen process).
 * - paused before_upstream (a zombie's late request): the holder resumes and, unless its lease check
 *   stops it first, presents a refresh token the taker has already rotated.
 */

import { startDevIdp } from "@token-broker/dev-idp"
import { Redacted } from "effect"
import { describeStore } from "../src/StoreSpec.js"
import { prepareBackend } from "../test/support/backends.js"
import { benchUsers, startProvisioner } from "../test/support/provisioning.js"
import {
  killAllChaosWorkers,
  retireProvisioner,
  sleep,
  startChaosWorker,
  waitUntil,
  wrongTokenReason
} from "./harness.js"
import type { RefreshStep, TokenResult } from "./protocol.js"
import { type ChaosContext, type ScenarioRow, say } from "./report.js"

const LEASE = { ttlMs: 2_000, waitMs: 15_000 }
const NAME = "SIGSTOP lease holder"

const describe = (result: TokenResult) =>
  result.ok
    ? `ok (${result.source})`
    : `${result.error.tag} ${result.error.reason ?? result.error.code ?? ""}`

export const leasePaused = async (ctx: ChaosContext): Promise<Array<ScenarioRow>> => {
  const runs = ctx.short ? 1 : 2
  const backends = ctx.short ? ctx.backends.slice(0, 1) : ctx.backends
  // both pause points in the short run too: each exercises its own branch of the protocol
  const steps: ReadonlyArray<RefreshStep> = ["after_upstream", "before_upstream"]
  const rows: Array<ScenarioRow> = []
  const users = benchUsers(steps.length * runs * backends.length + 1)
  for (const grace of [0, 30]) {
    const idp = await startDevIdp({ users, refreshTokenReuseGraceSeconds: grace })
    let nextUser = 0
    try {
      for (const kind of backends) {
        const backend = await prepareBackend(kind)
        const provisioner = await startProvisioner(idp, backend.spec)
        try {
          say(NAME, `grace ${grace} s, ${describeStore(backend.spec)}`)
          const [taker, checker] = await Promise.all([
            startChaosWorker({ base: provisioner.workerInit(`${kind}-taker`, LEASE) }),
            startChaosWorker({ base: provisioner.workerInit(`${kind}-checker`, LEASE) })
          ])
          for (const step of steps) {
            let lost = 0
            let unavoidable = 0
            let wrong = 0
            const problems: Array<string> = []
            const endings: Array<string> = []
            for (let run = 0; run < runs; run++) {
              const user = users[nextUser++]
              if (user === undefined) throw new Error("not enough dev-idp users")
              const subject = user.sub
              await provisioner.connect(user)
              await provisioner.expireAccessToken(subject)
              let stopped = false
              const holder = await startChaosWorker(
                { base: provisioner.workerInit(`${kind}-holder-${step}-${run}`, LEASE), stopAt: step },
                { onStep: () => (stopped = true) }
              )
              const held = holder.request<TokenResult>({ kind: "token", subject })
              await waitUntil(() => stopped, 30_000, `the holder reached ${step}`)
              holder.signal("SIGSTOP")
              const marked = await provisioner.grant(subject)
              // past the lease: the taker takes over (it waits for the expiry itself)
              const taken = await taker.request<TokenResult>({ kind: "token", subject })
              const afterTaker = await provisioner.grant(subject)
              const takerSecrets = await provisioner.decrypt(afterTaker).catch(() => undefined)
              await sleep(200)
              holder.signal("SIGCONT")
              holder.resume()
              const late = await Promise.race([
                held,
                sleep(20_000).then((): TokenResult | undefined => undefined)
              ])
              await holder.kill()
              const afterHolder = await provisioner.grant(subject)
              const finalSecrets = await provisioner.decrypt(afterHolder).catch(() => undefined)

              for (const result of [taken, late]) {
                if (result?.ok !== true) continue
                const reason = await wrongTokenReason(idp, subject, result.accessToken, result.endedAt)
                if (reason !== undefined) {
                  wrong++
                  problems.push(`wrong token: ${reason}`)
                }
              }
              // fenced: the holder's write did not land on top of the taker's
              const fenced =
                afterHolder.version === afterTaker.version &&
                takerSecrets !== undefined &&
                finalSecrets !== undefined &&
                Redacted.value(finalSecrets.refreshToken) === Redacted.value(takerSecrets.refreshToken)
              if (!fenced)
                problems.push(
                  `the late write was not fenced (version ${marked.version} -> taker ${afterTaker.version} -> ${afterHolder.version})`
                )
              const lateText = late === undefined ? "no answer in 20 s" : describe(late)
              let ending = `taker ${describe(taken)}, resumed holder ${lateText}, write fenced ${fenced}`
              if (taken.ok) {
                await provisioner.expireAccessToken(subject)
                const again = await checker.request<TokenResult>({ kind: "token", subject })
                const record = await provisioner.grant(subject)
                if (!again.ok || record.status !== "active") {
                  lost++
                  problems.push(`grant lost after the holder resumed: ${describe(again)}`)
                  if (
                    step === "before_upstream" &&
                    grace === 0 &&
                    !again.ok &&
                    again.error.tag === "ConsentRequired"
                  ) {
                    problems.push(
                      "the resumed holder presented a refresh token the taker had already rotated"
                    )
                  }
                } else ending += ", newer token stays, intact"
              } else {
                lost++
                const expected =
                  grace === 0 &&
                  step === "after_upstream" &&
                  taken.error.tag === "ConsentRequired" &&
                  taken.error.reason === "rotation_lost"
                if (expected) unavoidable++
                else problems.push(`taker ${describe(taken)} (no loss expected)`)
              }
              if (
                late !== undefined &&
                !late.ok &&
                late.error.tag !== "ConsentRequired" &&
                late.error.tag !== "UpstreamUnavailable"
              )
                problems.push(`the resumed holder failed with an untyped error: ${late.error.tag}`)
              endings.push(ending)
              say(NAME, `${kind} grace ${grace}, paused at ${step}: ${ending}`)
            }
            rows.push({
              scenario: `${NAME} at ${step}, grace ${grace}s`,
              backend: kind,
              runs,
              lost,
              unavoidable,
              wrongTokens: wrong,
              ok: problems.length === 0 && lost === unavoidable && wrong === 0,
              outcome: problems.length === 0 ? [...new Set(endings)].join("; ") : problems.join("; ")
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
