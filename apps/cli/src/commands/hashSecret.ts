/** The `hash-secret` command; its implementation (actions/hashSecret.ts) loads on demand. */
import { Command } from "@effect/cli"
import { Effect } from "effect"
import { lazy } from "../internal/Lazy.js"

export const hashSecret = Command.make("hash-secret", {}, () =>
  Effect.flatMap(
    lazy(() => import("../actions/hashSecret.js")),
    (action) => action.hashSecret()
  )
).pipe(
  Command.withDescription(
    'Read a caller secret (at least 16 characters) on stdin and print its scrypt hash, the "scrypt$..." text a caller\'s secretHash takes in the config. Pipe the secret in: printf \'%s\' "$SECRET" | token-broker hash-secret'
  )
)
