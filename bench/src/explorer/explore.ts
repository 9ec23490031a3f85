import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { type DevIdp, startDevIdp } from "@token-broker/dev-idp"
import { SqliteGrantStore } from "@token-broker/storage-sqlite"
import { Effect } from "effect"
import fc from "fast-check"
import { type ExplorerEnv, type RunOptions, runSchedule } from "./runSchedule.js"
import { describeStep, type ExplorerShape, type Step, scheduleArb } from "./Schedule.js"
import { STALL_BOUND_MS } from "./ScheduleSetup.js"

export interface ExploreOptions extends RunOptions, Omit<ExplorerShape, "brokers"> {
  readonly numRuns: number
  /** fast-check's seed; a random one when absent. Printed first, so any run can be replayed. */
  readonly seed?: number | undefined
  /** fast-check's replay path of a counterexample (printed with a failure): replays only that one. */
  readonly path?: string | undefined
  /** Shrink a failing schedule to a minimal one (default true). */
  readonly shrink?: boolean | undefined
  readonly log?: ((line: string) => void) | undefined
}

export interface ExploreResult {
  readonly seed: number
  readonly runs: number
  readonly seconds: number
  /** Schedules run again because one broke an invariant after an event-loop stall (`STALL_BOUND_MS`). */
  readonly rerunsAfterStall: number
  /** The (shrunk) failing schedule, its violations and fast-check's replay path; undefined when none. */
  readonly failure?:
    | {
        readonly schedule: ReadonlyArray<Step>
        readonly violations: ReadonlyArray<string>
        readonly trace: ReadonlyArray<string>
        readonly stalledMs: number
        readonly path: string | undefined
        /** The environment that replays this counterexample. */
        readonly replay: string
      }
    | undefined
}

/**
 * dev-idp (rotation, reuse detection with no grace, a rotated-away token's revocation ignored) and a
 * migrated SQLite file, for many schedules.
 */
export const startExplorerEnv = async (): Promise<ExplorerEnv & { readonly close: () => Promise<void> }> => {
  const users = Array.from({ length: 6 }, (_, i) => ({
    sub: `u-explorer-${i}`,
    username: `explorer${i}`,
    password: `explorer-password-${i}-${process.pid}`
  }))
  // the strict provider: a rotated-away token's revocation ends nothing (invariant 7 relies on it)
  const idp: DevIdp = await startDevIdp({
    users,
    refreshTokenReuseGraceSeconds: 0,
    consumedRefreshTokenRevocation: "ignored"
  })
  const dir = mkdtempSync(join(tmpdir(), "tb-explorer-"))
  const filename = join(dir, "grants.db")
  await Effect.runPromise(SqliteGrantStore.migrate({ filename }))
  return {
    idp,
    filename,
    users: idp.users,
    close: async () => {
      await idp.close()
      rmSync(dir, { recursive: true, force: true })
    }
  }
}

/**
 * The replay an environment asks for, for the explorer run over mixed scope sets (`downscoped`) or over
 * one scope set: `EXPLORER_SEED`, `EXPLORER_PATH` (one counterexample), `EXPLORER_RUNS`, and
 * `EXPLORER_DOWNSCOPED=1|0` naming the run they belong to (a failure prints all of them). A seed alone
 * replays both runs; a path belongs to one run, so it needs `EXPLORER_DOWNSCOPED`.
 */
export const replayFromEnv = (
  env: NodeJS.ProcessEnv,
  downscoped: boolean
): { seed?: number | undefined; path?: string | undefined; numRuns?: number | undefined } => {
  const which = env.EXPLORER_DOWNSCOPED
  if (which !== undefined && which !== "0" && which !== "1") {
    throw new Error(`EXPLORER_DOWNSCOPED must be 1 (mixed scope sets) or 0 (one scope set), not "${which}"`)
  }
  if (env.EXPLORER_PATH !== undefined && which === undefined) {
    throw new Error(
      "EXPLORER_PATH replays one counterexample of one run: set EXPLORER_DOWNSCOPED=1 (mixed scope sets) or 0 (one scope set), as the failure printed"
    )
  }
  const numRuns = env.EXPLORER_RUNS === undefined ? undefined : Number(env.EXPLORER_RUNS)
  if (which !== undefined && (which === "1") !== downscoped) return { numRuns }
  return {
    seed: env.EXPLORER_SEED === undefined ? undefined : Number(env.EXPLORER_SEED),
    path: env.EXPLORER_PATH,
    numRuns
  }
}

/** The environment that replays a run, or one counterexample of it. */
export const replayOf = (seed: number, downscoped: boolean, path?: string | undefined): string =>
  `EXPLORER_SEED=${seed}${path === undefined ? "" : ` EXPLORER_PATH=${path}`} EXPLORER_DOWNSCOPED=${downscoped ? 1 : 0}`

/**
 * Explores fault schedules with fast-check: `numRuns` random schedules from `seed`, each run against
 * the real parts; the first schedule that breaks an invariant is shrunk to a minimal one.
 */
export const explore = async (env: ExplorerEnv, options: ExploreOptions): Promise<ExploreResult> => {
  const seed = options.seed ?? (Math.random() * 2 ** 31) | 0
  const log = options.log ?? (() => undefined)
  log(
    `fault-schedule explorer: seed ${seed}${options.path === undefined ? "" : ` path ${options.path}`}, ${options.numRuns} schedules, ${options.brokers} brokers (replay: ${replayOf(seed, options.downscoped ?? true)})`
  )
  const started = Date.now()
  let runs = 0
  let rerunsAfterStall = 0
  let last:
    | {
        schedule: ReadonlyArray<Step>
        violations: ReadonlyArray<string>
        trace: ReadonlyArray<string>
        stalledMs: number
      }
    | undefined
  const property = fc.asyncProperty(
    scheduleArb({
      brokers: options.brokers,
      minSteps: options.minSteps,
      maxSteps: options.maxSteps,
      downscoped: options.downscoped
    }),
    async (schedule) => {
      runs++
      let outcome = await runSchedule(env, schedule, options)
      // a violation after a stall that outlived a lease renewal proves nothing: run it again (twice at most)
      for (
        let again = 0;
        again < 2 && outcome.violations.length > 0 && outcome.stalledMs > STALL_BOUND_MS;
        again++
      ) {
        rerunsAfterStall++
        log(
          `schedule ${runs}: the event loop stalled ${outcome.stalledMs} ms, ${outcome.violations.length} violation(s); run again`
        )
        outcome = await runSchedule(env, schedule, options)
      }
      if (outcome.violations.length > 0) last = { schedule, ...outcome }
      return outcome.violations.length === 0
    }
  )
  const details = await fc.check(property, {
    seed,
    numRuns: options.numRuns,
    ...(options.path === undefined ? {} : { path: options.path }),
    endOnFailure: options.shrink === false
  })
  const seconds = Math.round((Date.now() - started) / 100) / 10
  if (!details.failed || details.counterexample === null) return { seed, runs, seconds, rerunsAfterStall }
  // run the reported (shrunk) counterexample once more for its own trace
  const schedule = details.counterexample[0]
  const again = await runSchedule(env, schedule, options)
  const failure = {
    schedule,
    violations: again.violations.length > 0 ? again.violations : (last?.violations ?? []),
    trace: again.violations.length > 0 ? again.trace : (last?.trace ?? []),
    stalledMs: again.violations.length > 0 ? again.stalledMs : (last?.stalledMs ?? 0),
    path: details.counterexamplePath ?? undefined,
    replay: replayOf(seed, options.downscoped ?? true, details.counterexamplePath ?? undefined)
  }
  log(describeFailure(failure))
  return { seed, runs, seconds, rerunsAfterStall, failure }
}

export const describeFailure = (failure: NonNullable<ExploreResult["failure"]>): string =>
  [
    `invariant violated (replay: ${failure.replay}):`,
    ...failure.violations.map((v) => `  - ${v}`),
    "minimal schedule:",
    ...failure.schedule.map((s, i) => `  ${i + 1}. ${describeStep(s)}`),
    "what happened:",
    ...failure.trace.map((t) => `  ${t}`),
    `the event loop's longest stall in that run: ${failure.stalledMs} ms (bound ${STALL_BOUND_MS} ms)`
  ].join("\n")
