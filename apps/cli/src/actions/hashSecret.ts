/** `token-broker hash-secret`: the scrypt hash of a caller secret read from stdin, for the config's `callers`. */
import { hashSecret as hash } from "@token-broker/config"
import { Effect, Redacted } from "effect"
import { CliEnvironment } from "../internal/Environment.js"
import { type CliFailure, usageError } from "../internal/Failure.js"
import { printLine } from "../internal/Output.js"

/** Shorter secrets are guessable whatever the hash costs; the broker's callers must present this much. */
const MINIMUM_LENGTH = 16

export const hashSecret = (): Effect.Effect<void, CliFailure, CliEnvironment> =>
  Effect.gen(function* () {
    const env = yield* CliEnvironment
    // typed on a terminal, the secret would be echoed and stay in the scrollback
    if (env.stdinIsTTY) {
      return yield* usageError(
        "hash-secret reads the secret on stdin, not from a terminal",
        `pipe it in: printf '%s' "$SECRET" | token-broker hash-secret`
      )
    }
    const secret = Redacted.make((yield* Effect.promise(() => env.readStdin())).trim())
    if (Redacted.value(secret).length < MINIMUM_LENGTH) {
      return yield* usageError(`give a secret of at least ${MINIMUM_LENGTH} characters on stdin`)
    }
    yield* printLine(yield* hash(secret))
  })
