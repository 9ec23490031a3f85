import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { type DevIdp, startDevIdp } from "@token-broker/dev-idp"
import { SqliteGrantStore } from "@token-broker/storage-sqlite"
import { Effect } from "effect"
import fc from "fast-check"
import { type ExplorerEnv, type RunOptions, runSchedule } from "./runSchedule.js"
import { describeStep, type ExplorerShape, type Step, scheduleArb } from "./Schedule.js"

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
  /** The (shrunk) failing schedule, its violations and fast-check's replay path; undefined when none. */
  readonly failure?:
    | {
        readonly schedule: ReadonlyArray<Step>
        readonly violations: ReadonlyArray<string>
        readonly trace: ReadonlyArray<string>
        readonly path: string | undefined
      }
    | undefined
}

/** dev-idp (rotation, reuse detection with no grace) and a migrated SQLite file, for many schedules. */
export const startExplorerEnv = async (): Promise<ExplorerEnv & { readonly close: () => Promise<void> }> => {
  const users = Array.from({ length: 6 }, (_, i) => ({
    sub: `u-explorer-${i}`,
    username: `explorer${i}`,
    password: `explorer-password-${i}-${process.pid}`
  }))
  const idp: DevIdp = await startDevIdp({ users, refreshTokenReuseGraceSeconds: 0 })
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

/** Environment variables of a replay: `EXPLORER_SEED`, `EXPLORER_PATH`, `EXPLORER_RUNS`, `EXPLORER_DOWNSCOPED`. */
export const replayFromEnv = (env: NodeJS.ProcessEnv) => ({
  /** `EXPLORER_DOWNSCOPED=0` explores the grant's full scope set only. */
  downscoped: env.EXPLORER_DOWNSCOPED !== "0",
  seed: env.EXPLORER_SEED === undefined ? undefined : Number(env.EXPLORER_SEED),
  path: env.EXPLORER_PATH,
  numRuns: env.EXPLORER_RUNS === undefined ? undefined : Number(env.EXPLORER_RUNS)
})

/**
 * Explores fault schedules with fast-check: `numRuns` random schedules from `seed`, each run against
 * the real parts; the first schedule that breaks an invariant is shrunk to a minimal one.
 */
export const explore = async (env: ExplorerEnv, options: ExploreOptions): Promise<ExploreResult> => {
  const seed = options.seed ?? (Math.random() * 2 ** 31) | 0
  const log = options.log ?? (() => undefined)
  log(
    `fault-schedule explorer: seed ${seed}${options.path === undefined ? "" : ` path ${options.path}`}, ${options.numRuns} schedules, ${options.brokers} brokers (replay: EXPLORER_SEED=${seed})`
  )
  const started = Date.now()
  let runs = 0
  let last:
    | { schedule: ReadonlyArray<Step>; violations: ReadonlyArray<string>; trace: ReadonlyArray<string> }
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
      const outcome = await runSchedule(env, schedule, options)
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
  if (!details.failed || details.counterexample === null) return { seed, runs, seconds }
  // run the reported (shrunk) counterexample once more for its own trace
  const schedule = details.counterexample[0]
  const again = await runSchedule(env, schedule, options)
  const failure = {
    schedule,
    violations: again.violations.length > 0 ? again.violations : (last?.violations ?? []),
    trace: again.violations.length > 0 ? again.trace : (last?.trace ?? []),
    path: details.counterexamplePath ?? undefined
  }
  log(describeFailure(seed, failure))
  return { seed, runs, seconds, failure }
}

export const describeFailure = (seed: number, failure: NonNullable<ExploreResult["failure"]>): string =>
  [
    `invariant violated (replay: EXPLORER_SEED=${seed}${failure.path === undefined ? "" : ` EXPLORER_PATH=${failure.path}`}):`,
    ...failure.violations.map((v) => `  - ${v}`),
    "minimal schedule:",
    ...failure.schedule.map((s, i) => `  ${i + 1}. ${describeStep(s)}`),
    "what happened:",
    ...failure.trace.map((t) => `  ${t}`)
  ].join("\n")
