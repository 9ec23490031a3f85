import { Context, type Effect } from "effect"

/**
 * What the entry point (`bin.ts`) knows about the process, handed to every command: the environment
 * variables, the working directory, which streams are terminals, and writers for the two output streams.
 * Commands never read `process` themselves, so they run the same under tests.
 */
export interface CliEnvironmentService {
  readonly env: Readonly<Record<string, string | undefined>>
  readonly cwd: string
  readonly stdinIsTTY: boolean
  readonly stdoutIsTTY: boolean
  readonly stderrIsTTY: boolean
  /** Colour on stdout / stderr: the stream is a terminal and NO_COLOR is unset (FORCE_COLOR forces it). */
  readonly colorStdout: boolean
  readonly colorStderr: boolean
  readonly writeStdout: (text: string) => void
  readonly writeStderr: (text: string) => void
  /** All of stdin, to its end (for `hash-secret`, which takes the secret there). */
  readonly readStdin: () => Promise<string>
}

export class CliEnvironment extends Context.Tag("@token-broker/cli/CliEnvironment")<
  CliEnvironment,
  CliEnvironmentService
>() {}

export { colorFor } from "./color.js"

export const environment: Effect.Effect<CliEnvironmentService, never, CliEnvironment> = CliEnvironment
