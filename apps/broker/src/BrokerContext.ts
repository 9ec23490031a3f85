import type { BrokerLayerError, BrokerServices, Config } from "@token-broker/config"
import {
  AuthorizationServer,
  GrantStore,
  TokenBroker,
  type TokenBrokerError,
  TokenVerifier
} from "@token-broker/core"
import { Cause, type Context, Effect, Exit, type ManagedRuntime, Option } from "effect"
import { HttpOAuthError, HttpProblem, oauthErrorOf, problemOf } from "./Problems.js"

/**
 * What every route plugin is given: the config, the one runtime of the server, core's services taken
 * from it once at start, and `run`, which runs a use case in that runtime and turns a typed failure into
 * the HTTP error of the route's style.
 */
export type BrokerRuntime = ManagedRuntime.ManagedRuntime<BrokerServices, BrokerLayerError>

export interface BrokerContext {
  readonly config: Config
  readonly runtime: BrokerRuntime
  readonly broker: Context.Tag.Service<typeof TokenBroker.TokenBroker>
  readonly verifier: Context.Tag.Service<typeof TokenVerifier.TokenVerifier>
  readonly store: Context.Tag.Service<typeof GrantStore.GrantStore>
  readonly servers: Context.Tag.Service<typeof AuthorizationServer.AuthorizationServers>
  /**
   * Runs a use case; a typed failure is thrown as its problem (or, style "oauth", its RFC 6749 error),
   * and a route's own refusal failed inside the effect as itself.
   */
  readonly run: <A>(
    effect: Effect.Effect<A, TokenBrokerError | HttpRefusal, BrokerServices>,
    style?: "problem" | "oauth"
  ) => Promise<A>
}

/** A refusal a route decides itself, between the steps of a use case it runs as one effect. */
export type HttpRefusal = HttpOAuthError | HttpProblem

const isTokenBrokerError = (error: unknown): error is TokenBrokerError =>
  typeof error === "object" && error !== null && "_tag" in error && "code" in error

export const makeBrokerContext = async (config: Config, runtime: BrokerRuntime): Promise<BrokerContext> => {
  const services = await runtime.runPromise(
    Effect.all({
      broker: TokenBroker.TokenBroker,
      verifier: TokenVerifier.TokenVerifier,
      store: GrantStore.GrantStore,
      servers: AuthorizationServer.AuthorizationServers
    })
  )
  const run: BrokerContext["run"] = async (effect, style = "problem") => {
    const exit = await runtime.runPromiseExit(effect)
    if (Exit.isSuccess(exit)) return exit.value
    const failure = Cause.failureOption(exit.cause)
    if (
      Option.isSome(failure) &&
      (failure.value instanceof HttpOAuthError || failure.value instanceof HttpProblem)
    )
      throw failure.value
    if (Option.isSome(failure) && isTokenBrokerError(failure.value)) {
      throw style === "oauth"
        ? new HttpOAuthError(oauthErrorOf(failure.value))
        : new HttpProblem(problemOf(failure.value))
    }
    throw new Error(`unexpected failure: ${Cause.pretty(exit.cause).split("\n")[0] ?? "defect"}`)
  }
  return { config, runtime, ...services, run }
}
