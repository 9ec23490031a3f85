import { Data } from "effect"

/**
 * Exit codes, the same for every command:
 * 0 success; 1 the operation failed (storage or provider down or refusing, a fault found by doctor, a
 * grant that does not decrypt); 2 usage or configuration error (bad arguments, missing or invalid config,
 * unknown provider); 3 not found or consent required (no such grant, no usable grant: run `connect`).
 */
export const ExitCode = { ok: 0, failed: 1, usage: 2, notFound: 3, interrupted: 130 } as const
export type FailureExitCode = 1 | 2 | 3

/** A failure the CLI reports: a message for the person, the exit code, and how to fix it where known. */
export class CliFailure extends Data.TaggedError("CliFailure")<{
  readonly message: string
  readonly exitCode: FailureExitCode
  readonly hint?: string | undefined
}> {}

export const usageError = (message: string, hint?: string): CliFailure =>
  new CliFailure({ message, exitCode: ExitCode.usage, hint })

export const operationFailed = (message: string, hint?: string): CliFailure =>
  new CliFailure({ message, exitCode: ExitCode.failed, hint })

export const notFound = (message: string, hint?: string): CliFailure =>
  new CliFailure({ message, exitCode: ExitCode.notFound, hint })

/** The typed errors of core and config (by `_tag`, so this module imports none of them). */
export interface BrokerError {
  readonly _tag: string
  readonly message: string
  readonly subject?: string
  readonly provider?: string
  readonly reason?: string
  readonly error?: string
  readonly errorDescription?: string | undefined
}

/** Maps a core/config error to the CLI's failure: exit code by kind, with a fix where one is known. */
export const fromBrokerError = (error: BrokerError): CliFailure => {
  switch (error._tag) {
    case "ConsentRequired":
      return notFound(
        error.message,
        error.subject !== undefined && error.provider !== undefined
          ? `the user must consent again: token-broker connect --provider ${error.provider} --subject ${error.subject}`
          : undefined
      )
    case "ConfigInvalid":
    case "ProviderNotFound":
    case "InvalidRequest":
      return usageError(error.message)
    case "StorageUnavailable":
      return operationFailed(
        error.message,
        /migrat/.test(error.message)
          ? "run: token-broker migrate"
          : "check that the database is reachable: token-broker doctor"
      )
    case "DecryptionFailed":
      return operationFailed(
        error.message,
        "the configured keys do not match the ones the grants were written with: token-broker doctor"
      )
    case "UpstreamUnavailable":
      return operationFailed(error.message, "the provider is unreachable or overloaded: token-broker doctor")
    case "UpstreamRejected":
      return operationFailed(
        `${error.message}${error.error === undefined ? "" : ` (${error.error}${error.errorDescription ? `: ${error.errorDescription}` : ""})`}`,
        "check the provider's client id, secret and scopes in the config"
      )
    default:
      return operationFailed(error.message)
  }
}
