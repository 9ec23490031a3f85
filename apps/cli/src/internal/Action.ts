import type { Effect } from "effect"
import type { CliEnvironment } from "./Environment.js"
import type { CliFailure } from "./Failure.js"

/**
 * A command's implementation: it gets the parsed arguments (the config file as an absolute path) and prints
 * its result, or fails with a CliFailure that the entry point turns into a message and an exit code.
 */
export type Action<A> = (args: A) => Effect.Effect<void, CliFailure, CliEnvironment>

/** The arguments of an action that takes only the config file and `--json` (doctor, migrate, keys list). */
export interface ReportArgs {
  readonly path: string
  readonly json: boolean
}
