/**
 * The frame of the two scenarios that stop a broker process at a step of its refresh while it holds the
 * grant's lease (`killAtStep.ts`: SIGKILL; `leasePaused.ts`: SIGSTOP then SIGCONT): for each reuse
 * grace and backend a fresh dev-idp, store and provisioner with a taker and a checker worker; for each
 * step and run a fresh subject whose access token is expired and a worker stopped at that step. The
 * scenario says what it does with them and tallies the outcome; this file turns the tallies into rows.
 */
import { type DevIdp, startDevIdp } from "@token-broker/dev-idp"
import { describeStore, type StoreKind } from "../src/StoreSpec.js"
import { prepareBackend } from "../test/support/backends.js"
import { benchUsers, type Provisioner, startProvisioner } from "../test/support/provisioning.js"
import type { RefreshStep, RevealedOutcome } from "../test/support/workerProtocol.js"
import {
  type ChaosWorker,
  killAllChaosWorkers,
  retireProvisioner,
  startChaosWorker,
  waitUntil
} from "./harness.js"
import { type ScenarioRow, say } from "./report.js"
import { wrongTokenReason } from "./tokenChecks.js"

/** How a call ended, in a few words. */
export const describeOutcome = (result: RevealedOutcome) =>
  result.ok
    ? `ok (${result.source})`
    : `${result.error.tag} ${result.error.reason ?? result.error.code ?? ""}`

/** One run's counts, summed over the runs of a step into one row. */
export interface StepTally {
  lost: number
  unavoidable: number
  wrong: number
  readonly problems: Array<string>
}

export interface StepRun {
  readonly idp: DevIdp
  readonly grace: number
  readonly kind: StoreKind
  readonly step: RefreshStep
  readonly provisioner: Provisioner
  readonly taker: ChaosWorker
  readonly checker: ChaosWorker
  /** A subject of its own, connected, its stored access token expired. */
  readonly subject: string
  /** The worker stopped at `step` of its refresh of `subject`'s grant, and its pending answer (which rejects when it is killed). */
  readonly stopped: ChaosWorker
  readonly answer: Promise<RevealedOutcome>
  readonly tally: StepTally
  /** Counts a served token that the checks find wrong. */
  readonly checkServed: (result: RevealedOutcome | undefined) => Promise<void>
}

export interface StepScenario {
  readonly name: string
  /** Who the stopped worker is (`victim`, `holder`): its instance id and the wait's message say so. */
  readonly role: string
  readonly backends: ReadonlyArray<StoreKind>
  readonly steps: ReadonlyArray<RefreshStep>
  readonly runs: number
  readonly lease: { readonly ttlMs: number; readonly waitMs: number }
  readonly rowName: (step: RefreshStep, grace: number) => string
  /** One run; answers its ending, in a few words. */
  readonly run: (run: StepRun) => Promise<string>
}

export const runStepScenario = async (scenario: StepScenario): Promise<Array<ScenarioRow>> => {
  const { name, lease, runs, steps } = scenario
  const rows: Array<ScenarioRow> = []
  const users = benchUsers(steps.length * runs * scenario.backends.length + 1)
  for (const grace of [0, 30]) {
    const idp = await startDevIdp({ users, refreshTokenReuseGraceSeconds: grace })
    let nextUser = 0
    try {
      for (const kind of scenario.backends) {
        const backend = await prepareBackend(kind)
        const provisioner = await startProvisioner(idp, backend.spec)
        try {
          say(name, `grace ${grace} s, ${describeStore(backend.spec)}`)
          const [taker, checker] = await Promise.all([
            startChaosWorker(provisioner.workerInit(`${kind}-taker`, lease)),
            startChaosWorker(provisioner.workerInit(`${kind}-checker`, lease))
          ])
          const place = { idp, grace, kind, provisioner, taker, checker }
          for (const step of steps) {
            const tally: StepTally = { lost: 0, unavoidable: 0, wrong: 0, problems: [] }
            const endings = new Map<string, number>()
            for (let run = 0; run < runs; run++) {
              const user = users[nextUser++]
              if (user === undefined) throw new Error("not enough dev-idp users")
              const subject = user.sub
              await provisioner.connect(user)
              await provisioner.expireAccessToken(subject)
              let reached = false
              const stopped = await startChaosWorker(
                {
                  ...provisioner.workerInit(`${kind}-${scenario.role}-${step}-${run}`, lease),
                  stopAt: step
                },
                { onStep: () => (reached = true) }
              )
              const answer = stopped.request<RevealedOutcome>({ kind: "token", subject })
              // a killed worker's answer rejects: a run that does not wait for it must not crash the suite
              answer.catch(() => undefined)
              await waitUntil(() => reached, 30_000, `the ${scenario.role} reached ${step}`)
              const checkServed = async (result: RevealedOutcome | undefined) => {
                if (result?.ok !== true) return
                const reason = await wrongTokenReason(idp, subject, result.accessToken, result.endedAt)
                if (reason !== undefined) {
                  tally.wrong++
                  tally.problems.push(`wrong token: ${reason}`)
                }
              }
              const ending = await scenario.run({
                ...place,
                step,
                subject,
                stopped,
                answer,
                tally,
                checkServed
              })
              endings.set(ending, (endings.get(ending) ?? 0) + 1)
            }
            const { lost, unavoidable, wrong, problems } = tally
            rows.push({
              scenario: scenario.rowName(step, grace),
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
          await retireProvisioner(provisioner, name)
          await backend.cleanup()
        }
      }
    } finally {
      await idp.close()
    }
  }
  return rows
}
