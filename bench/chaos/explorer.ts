/**
 * The fault-schedule explorer's long run (issue 12): many more random schedules than the short run in
 * `pnpm test`, over both the mixed scope sets and one scope set, each failure shrunk to a minimal
 * schedule and printed with its seed and replay path. Control rows run deliberately broken brokers (a
 * store that drops the rotated refresh token; a revoke that never reaches the provider) and pass only
 * when the invariants catch them.
 */
import { describeFailure, explore, replayFromEnv, startExplorerEnv } from "../src/explorer/explore.js"
import { type RunOptions, runSchedule } from "../src/explorer/runSchedule.js"
import type { Step } from "../src/explorer/Schedule.js"
import { type ChaosContext, type ScenarioRow, say } from "./report.js"

const NAME = "fault-schedule explorer"

export const explorer = async (ctx: ChaosContext): Promise<Array<ScenarioRow>> => {
  const env = await startExplorerEnv()
  const rows: Array<ScenarioRow> = []
  try {
    // both runs explore mixed scope sets (a downscoped caller beside full-scope ones) and one scope set
    for (const downscoped of [true, false]) {
      const replay = replayFromEnv(process.env, downscoped)
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
            ? `seed ${result.seed}: no invariant violated in ${result.seconds} s${result.rerunsAfterStall === 0 ? "" : ` (${result.rerunsAfterStall} schedule run(s) repeated after an event-loop stall)`}`
            : `seed ${result.seed}: ${result.failure.violations[0] ?? "violated"} (${result.failure.schedule.length} steps; replay ${result.failure.replay})`
      })
      if (result.failure !== undefined) console.log(describeFailure(result.failure))
    }
    rows.push(...(await controls(env)))
  } finally {
    await env.close()
  }
  return rows
}

/** The schedule of the first control: two refreshes a token lifetime apart, by two brokers. */
const CONTROL: ReadonlyArray<Step> = [
  { kind: "advance", seconds: 400 },
  { kind: "call", call: { broker: 1, scopes: "all", minTtlSeconds: 0 } },
  { kind: "advance", seconds: 400 },
  { kind: "call", call: { broker: 2, scopes: "all", minTtlSeconds: 0 } }
]

/** The schedule of the second control: a refresh, then a revoke through another broker. */
const REVOKE_CONTROL: ReadonlyArray<Step> = [
  { kind: "advance", seconds: 400 },
  { kind: "call", call: { broker: 0, scopes: "all", minTtlSeconds: 0 } },
  { kind: "revoke", broker: 1, reconsent: false }
]

/** Runs a broken broker and the sound one on one schedule: passes when only the broken one is caught. */
const controlRow = async (
  env: Parameters<typeof runSchedule>[0],
  what: string,
  schedule: ReadonlyArray<Step>,
  broken: Omit<RunOptions, "brokers">,
  expected: RegExp
): Promise<ScenarioRow> => {
  const bad = await runSchedule(env, schedule, { brokers: 3, ...broken })
  const sound = await runSchedule(env, schedule, { brokers: 3 })
  const caught = bad.violations.some((v) => expected.test(v))
  return {
    scenario: `${NAME} control: ${what}`,
    backend: "sqlite",
    runs: 2,
    lost: 0,
    unavoidable: 0,
    wrongTokens: 0,
    ok: caught && sound.violations.length === 0,
    outcome: caught
      ? sound.violations.length === 0
        ? `caught: ${bad.violations.length} violation(s); the sound broker: none`
        : `the sound broker broke an invariant too: ${sound.violations[0]}`
      : "NOT caught: the invariants did not fire on the broken broker"
  }
}

/** The controls: each invariant family must catch a broker broken for it. */
export const controls = async (env: Parameters<typeof runSchedule>[0]): Promise<Array<ScenarioRow>> => [
  await controlRow(
    env,
    "a store that drops the rotated refresh token",
    CONTROL,
    { dropRotatedRefreshToken: true },
    /already rotated away/
  ),
  await controlRow(
    env,
    "a revoke that never reaches the provider",
    REVOKE_CONTROL,
    { revokeLocallyOnly: true },
    /the provider still holds \d+ refresh token/
  )
]
