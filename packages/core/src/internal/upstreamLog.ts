import { Effect } from "effect"

/** An error of an upstream call, as far as its log line needs it (never a token: none of these carry one). */
type UpstreamFailure =
  | { readonly _tag: "UpstreamRejected"; readonly error: string; readonly status?: number | undefined }
  | { readonly _tag: "UpstreamUnavailable"; readonly reason: string; readonly status?: number | undefined }
  | {
      readonly _tag: "InvalidGrant"
      readonly refusal?: { readonly status: number } | undefined
    }
  | { readonly _tag: "UnreadableAnswer"; readonly status: number; readonly problem: string }

export const errorCodeOf = (error: UpstreamFailure): string => {
  switch (error._tag) {
    case "UpstreamRejected":
      return error.error
    case "UpstreamUnavailable":
      return error.reason
    case "InvalidGrant":
      return error.refusal === undefined ? "invalid_grant" : "refused_without_error"
    case "UnreadableAnswer":
      return "invalid_response"
  }
}

export const statusOf = (error: UpstreamFailure): number | undefined => {
  switch (error._tag) {
    case "InvalidGrant":
      return error.refusal?.status ?? 400
    case "UnreadableAnswer":
      return error.status
    default:
      return error.status
  }
}

/**
 * The one warn line of a refused or failed upstream call: provider, grant (where there is one),
 * operation, error code and status. `fields` adds context (an outcome); never a token.
 */
export const logUpstreamFailure = (
  operation: string,
  context: { readonly provider: string; readonly grant?: string | undefined },
  error: UpstreamFailure,
  fields: Record<string, unknown> = {},
  detail?: string
) => {
  const errorCode = errorCodeOf(error)
  const status = statusOf(error)
  return Effect.logWarning(
    `${operation} at provider "${context.provider}" failed: ${errorCode}${status === undefined ? "" : ` (HTTP ${status})`}${
      detail === undefined ? "" : `; ${detail}`
    }`
  ).pipe(
    Effect.annotateLogs({
      provider: context.provider,
      ...(context.grant === undefined ? {} : { grant: context.grant }),
      operation,
      errorCode,
      ...(status === undefined ? {} : { status }),
      ...fields
    })
  )
}
