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

import { Redacted } from "effect"
import type { RefreshStep, RevealedOutcome } from "../test/support/workerProtocol.js"
import { sleep } from "./harness.js"
import { type ChaosContext, type ScenarioRow, say } from "./report.js"
import { describeOutcome as describe, runStepScenario } from "./stepScenario.js"

const NAME = "SIGSTOP lease holder"

// both pause points in the short run too: each exercises its own branch of the protocol
const STEPS: ReadonlyArray<RefreshStep> = ["after_upstream", "before_upstream"]

export const leasePaused = (ctx: ChaosContext): Promise<Array<ScenarioRow>> =>
  runStepScenario({
    name: NAME,
    role: "holder",
    backends: ctx.short ? ctx.backends.slice(0, 1) : ctx.backends,
    steps: STEPS,
    runs: ctx.short ? 1 : 2,
    lease: { ttlMs: 2_000, waitMs: 15_000 },
    rowName: (step, grace) => `${NAME} at ${step}, grace ${grace}s`,
    run: async ({
      grace,
      kind,
      step,
      provisioner,
      taker,
      checker,
      subject,
      stopped: holder,
      answer: held,
      tally,
      checkServed
    }) => {
      holder.signal("SIGSTOP")
      const marked = await provisioner.grant(subject)
      // past the lease: the taker takes over (it waits for the expiry itself)
      const taken = await taker.request<RevealedOutcome>({ kind: "token", subject })
      const afterTaker = await provisioner.grant(subject)
      const takerSecrets = await provisioner.decrypt(afterTaker).catch(() => undefined)
      await sleep(200)
      holder.signal("SIGCONT")
      holder.resume()
      const late = await Promise.race([
        held,
        sleep(20_000).then((): RevealedOutcome | undefined => undefined)
      ])
      await holder.kill()
      const afterHolder = await provisioner.grant(subject)
      const finalSecrets = await provisioner.decrypt(afterHolder).catch(() => undefined)

      for (const result of [taken, late]) await checkServed(result)
      // fenced: the holder's write did not land on top of the taker's
      const fenced =
        afterHolder.version === afterTaker.version &&
        takerSecrets !== undefined &&
        finalSecrets !== undefined &&
        Redacted.value(finalSecrets.refreshToken) === Redacted.value(takerSecrets.refreshToken)
      if (!fenced)
        tally.problems.push(
          `the late write was not fenced (version ${marked.version} -> taker ${afterTaker.version} -> ${afterHolder.version})`
        )
      const lateText = late === undefined ? "no answer in 20 s" : describe(late)
      let ending = `taker ${describe(taken)}, resumed holder ${lateText}, write fenced ${fenced}`
      if (taken.ok) {
        await provisioner.expireAccessToken(subject)
        const again = await checker.request<RevealedOutcome>({ kind: "token", subject })
        const record = await provisioner.grant(subject)
        if (!again.ok || record.status !== "active") {
          tally.lost++
          tally.problems.push(`grant lost after the holder resumed: ${describe(again)}`)
          if (
            step === "before_upstream" &&
            grace === 0 &&
            !again.ok &&
            again.error.tag === "ConsentRequired"
          ) {
            tally.problems.push("the resumed holder presented a refresh token the taker had already rotated")
          }
        } else ending += ", newer token stays, intact"
      } else {
        tally.lost++
        const expected =
          grace === 0 &&
          step === "after_upstream" &&
          taken.error.tag === "ConsentRequired" &&
          taken.error.reason === "rotation_lost"
        if (expected) tally.unavoidable++
        else tally.problems.push(`taker ${describe(taken)} (no loss expected)`)
      }
      if (
        late !== undefined &&
        !late.ok &&
        late.error.tag !== "ConsentRequired" &&
        late.error.tag !== "UpstreamUnavailable"
      )
        tally.problems.push(`the resumed holder failed with an untyped error: ${late.error.tag}`)
      say(NAME, `${kind} grace ${grace}, paused at ${step}: ${ending}`)
      return ending
    }
  })
