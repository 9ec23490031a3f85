/** `token-broker token`: one background access token for a subject and provider, printed for scripts. */
import { TokenBroker } from "@token-broker/core"
import { Clock, Effect, Redacted } from "effect"
import { loadCliConfig, requestedScopes, withBroker } from "../internal/Broker.js"
import type { CliEnvironment } from "../internal/Environment.js"
import { type CliFailure, fromBrokerError, usageError } from "../internal/Failure.js"
import type { TokenRequest } from "../internal/Options.js"
import { printJson, printLine } from "../internal/Output.js"

export const token = (
  args: TokenRequest & {
    readonly minTtlSeconds: number | undefined
  }
): Effect.Effect<void, CliFailure, CliEnvironment> =>
  Effect.gen(function* () {
    if (args.minTtlSeconds !== undefined && args.minTtlSeconds < 0) {
      return yield* usageError("--min-ttl must be a number of seconds, 0 or more")
    }
    const config = yield* loadCliConfig(args.path)
    const issued = yield* withBroker(
      config,
      Effect.flatMap(TokenBroker.TokenBroker, (broker) =>
        broker.backgroundToken({
          tenant: args.tenant,
          subject: args.subject,
          provider: args.provider,
          scopes: requestedScopes(args.scopes),
          minTtl: args.minTtlSeconds === undefined ? undefined : `${args.minTtlSeconds} seconds`
        })
      ).pipe(Effect.mapError(fromBrokerError))
    )
    if (!args.json) return yield* printLine(Redacted.value(issued.accessToken))
    const now = yield* Clock.currentTimeMillis
    yield* printJson({
      accessToken: Redacted.value(issued.accessToken),
      tokenType: issued.tokenType,
      expiresAt: new Date(issued.expiresAt).toISOString(),
      expiresIn: Math.max(0, Math.floor((issued.expiresAt - now) / 1000)),
      scopes: issued.scopes,
      source: issued.source
    })
  })
