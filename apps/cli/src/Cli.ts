import { stripVTControlCharacters } from "node:util"
import { Command, ValidationError } from "@effect/cli"
import type { CliApp } from "@effect/cli/CliApp"
import { Cause, Console, Effect } from "effect"
import packageJson from "../package.json" with { type: "json" }
import { connect } from "./commands/connect.js"
import { doctor } from "./commands/doctor.js"
import { grants } from "./commands/grants.js"
import { hashSecret } from "./commands/hashSecret.js"
import { init } from "./commands/init.js"
import { keys } from "./commands/keys.js"
import { migrate } from "./commands/migrate.js"
import { token } from "./commands/token.js"
import { CliEnvironment } from "./internal/Environment.js"
import { ExitCode } from "./internal/Failure.js"
import { printNote, styled } from "./internal/Output.js"

/**
 * The `token-broker` command tree. Every command module holds definitions only; each command's
 * implementation (storage drivers, openid-client, the broker) is imported when that command runs.
 */
const descriptorHolder: { descriptor?: Parameters<typeof ValidationError.helpRequested>[0] } = {}

export const root = Command.make("token-broker", {}, () =>
  descriptorHolder.descriptor === undefined
    ? Effect.void
    : Effect.fail(ValidationError.helpRequested(descriptorHolder.descriptor))
).pipe(
  Command.withDescription(
    "Administer a token-broker: set up, migrate, inspect and revoke grants, rotate keys, connect users, diagnose and hash callers' secrets. Exit codes: 0 ok, 1 failed, 2 usage or config error, 3 not found or consent required"
  ),
  Command.withSubcommands([init, migrate, grants, keys, token, connect, doctor, hashSecret])
)
descriptorHolder.descriptor = root.descriptor

const cli = Command.run(root, { name: "token-broker", version: packageJson.version })

/** Runs the CLI on `argv` (as `process.argv`) and answers the process's exit code. */
export const run = (
  argv: ReadonlyArray<string>
): Effect.Effect<number, never, CliEnvironment | CliApp.Environment> =>
  cli(argv).pipe(
    Effect.as(ExitCode.ok as number),
    Effect.catchAll((error) => {
      if (ValidationError.isValidationError(error)) {
        // @effect/cli has printed what is wrong already
        return Effect.succeed(ExitCode.usage as number)
      }
      return Effect.gen(function* () {
        yield* printNote(`${yield* styled("stderr", "red", "error:")} ${error.message}`)
        if (error.hint !== undefined)
          yield* printNote(`${yield* styled("stderr", "dim", "hint:")} ${error.hint}`)
        return error.exitCode as number
      })
    }),
    Effect.catchAllCause((cause) =>
      Cause.isInterruptedOnly(cause)
        ? Effect.succeed(ExitCode.interrupted as number)
        : Effect.as(
            printNote(`error: unexpected failure, please report it:\n${Cause.pretty(cause)}`),
            ExitCode.failed as number
          )
    )
  )

/** Console output of @effect/cli (help, usage errors) without ANSI styling where a stream gets no colour. */
export const withPlainConsole = <A, E, R>(
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, E, R | CliEnvironment> =>
  Effect.flatMap(CliEnvironment, (env) =>
    Console.consoleWith((console) => {
      const plain = (text: unknown) => (typeof text === "string" ? stripVTControlCharacters(text) : text)
      return Console.withConsole(effect, {
        ...console,
        log: (...args: ReadonlyArray<unknown>) =>
          Effect.sync(() => env.writeStdout(`${(env.colorStdout ? args : args.map(plain)).join(" ")}\n`)),
        error: (...args: ReadonlyArray<unknown>) =>
          Effect.sync(() => env.writeStderr(`${(env.colorStderr ? args : args.map(plain)).join(" ")}\n`))
      })
    })
  )
