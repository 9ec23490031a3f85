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
import type { RefreshStep, RevealedOutcome } from "../test/support/workerProtocol.js"
import { type ChaosContext, type ScenarioRow, say } from "./report.js"
import { describeOutcome as describe, runStepScenario } from "./stepScenario.js"

const STEPS: ReadonlyArray<RefreshStep> = ["before_upstream", "after_upstream", "after_write"]
const NAME = "kill -9 at step"

export const killAtStep = (ctx: ChaosContext): Promise<Array<ScenarioRow>> =>
  runStepScenario({
    name: NAME,
    role: "victim",
    backends: ctx.backends,
    steps: STEPS,
    runs: ctx.short ? 1 : 3,
    lease: { ttlMs: 2_000, waitMs: 15_000 },
    rowName: (step, grace) => `${NAME} ${step}, grace ${grace}s`,
    run: async ({ grace, kind, step, provisioner, taker, checker, subject, stopped, tally, checkServed }) => {
      await stopped.kill()
      const killedAt = Date.now()
      const first = await taker.request<RevealedOutcome>({ kind: "token", subject })
      await checkServed(first)
      const lossExpected = step === "after_upstream" && grace === 0
      let ending: string
      if (first.ok) {
        // intact: a new expiry, a refresh through a process that never saw this grant
        await provisioner.expireAccessToken(subject)
        const again = await checker.request<RevealedOutcome>({ kind: "token", subject })
        await checkServed(again)
        const record = await provisioner.grant(subject)
        if (!again.ok || again.source !== "refresh" || record.status !== "active") {
          tally.lost++
          tally.problems.push(`grant not intact after ${describe(first)}: then ${describe(again)}`)
        }
        if (lossExpected) tally.problems.push("expected rotation_lost, got a token")
        const expectedSource = step === "after_write" ? "store" : "refresh"
        if (first.source !== expectedSource)
          tally.problems.push(`first token from ${first.source}, expected ${expectedSource}`)
        ending = `${describe(first)}, intact`
      } else {
        tally.lost++
        const again = await checker.request<RevealedOutcome>({ kind: "token", subject })
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
        if (lossExpected && reported && decrypts) tally.unavoidable++
        else
          tally.problems.push(
            `${describe(first)} then ${describe(again)}, grant ${record.status}/${record.lastErrorCode}` +
              `${decrypts ? "" : ", record no longer decrypts"}${lossExpected ? "" : " (no loss expected)"}`
          )
        ending = `${describe(first)}`
      }
      say(
        NAME,
        `${kind} grace ${grace}: killed at ${step}; the next broker answered after ${first.endedAt - killedAt} ms: ${ending}`
      )
      return ending
    }
  })
