/**
 * The fault-schedule explorer's long run (issue 12): many more random schedules than the short run in
 * `pnpm test`, over both the mixed scope sets and one scope set, each failure shrunk to a minimal
 * schedule and printed with its seed and replay path. A control row runs a deliberately broken broker
 * (a store that drops the rotated refresh token) and passes only when the invariants catch it.
 */
import { describeFailure, explore, replayFromEnv, startExplorerEnv } from "../src/explorer/explore.js"
import { runSchedule } from "../src/explorer/runSchedule.js"
import type { Step } from "../src/explorer/Schedule.js"
import { type ChaosContext, type ScenarioRow, say } from "./report.js"

const NAME = "fault-schedule explorer"

export const explorer = async (ctx: ChaosContext): Promise<Array<ScenarioRow>> => {
  const env = await startExplorerEnv()
  const rows: Array<ScenarioRow> = []
  try {
    const replay = replayFromEnv(process.env)
    // both runs explore mixed scope sets (a downscoped caller beside full-scope ones) and one scope set
    for (const downscoped of [true, false]) {
      const result = await explore(env, {
        brokers: 3,
        minSteps: 3,
        maxSteps: 12,
        numRuns: replay.numRuns ?? (ctx.short ? 150 : 1500),
        seed: replay.seed,
        path: replay.path,
        downscoped,
        log: (line) => say(NAME, line)
      })
      rows.push({
        scenario: `${NAME} (${downscoped ? "mixed scope sets" : "one scope set"})`,
        backend: "sqlite",
        runs: result.runs,
        lost: 0,
        unavoidable: 0,
        wrongTokens: 0,
        ok: result.failure === undefined,
        outcome:
          result.failure === undefined
            ? `seed ${result.seed}: no invariant violated in ${result.seconds} s`
            : `seed ${result.seed}: ${result.failure.violations[0] ?? "violated"} (${result.failure.schedule.length} steps; replay EXPLORER_SEED=${result.seed}${result.failure.path === undefined ? "" : ` EXPLORER_PATH=${result.failure.path}`})`
      })
      if (result.failure !== undefined) console.log(describeFailure(result.seed, result.failure))
    }
    rows.push(await control(env))
  } finally {
    await env.close()
  }
  return rows
}

/** The schedule of the control: two refreshes a token lifetime apart, by two brokers. */
const CONTROL: ReadonlyArray<Step> = [
  { kind: "advance", seconds: 400 },
  { kind: "call", call: { broker: 1, scopes: "all", minTtlSeconds: 0 } },
  { kind: "advance", seconds: 400 },
  { kind: "call", call: { broker: 2, scopes: "all", minTtlSeconds: 0 } }
]

/** Passes when the broken broker is caught and the same schedule on the sound one is clean. */
export const control = async (env: Parameters<typeof runSchedule>[0]): Promise<ScenarioRow> => {
  const broken = await runSchedule(env, CONTROL, { brokers: 3, dropRotatedRefreshToken: true })
  const sound = await runSchedule(env, CONTROL, { brokers: 3 })
  const caught = broken.violations.some((v) => /already rotated away/.test(v))
  return {
    scenario: `${NAME} control: a store that drops the rotated refresh token`,
    backend: "sqlite",
    runs: 2,
    lost: 0,
    unavoidable: 0,
    wrongTokens: 0,
    ok: caught && sound.violations.length === 0,
    outcome: caught
      ? sound.violations.length === 0
        ? `caught: ${broken.violations.length} violation(s); the sound broker: none`
        : `the sound broker broke an invariant too: ${sound.violations[0]}`
      : "NOT caught: the invariants did not fire on a broker that drops rotations"
  }
}
