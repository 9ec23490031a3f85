import { Effect } from "effect"
import { UpstreamRejected } from "../Errors.js"
import { type MappedError, mapUpstreamError } from "./upstreamError.js"

/** Runs one openid-client call with the caller's interruption wired to the fetch, and maps its errors. */
export const call = <A>(
  provider: string,
  operation: string,
  run: (signal: AbortSignal) => Promise<A>
): Effect.Effect<A, MappedError> =>
  Effect.tryPromise({ try: run, catch: (cause) => cause }).pipe(
    Effect.catchAll((cause) => mapUpstreamError(provider, operation, cause))
  )

/** `invalid_grant` where no grant is involved (revocation, introspection) is a rejection like any other. */
export const rejectedGrant = (provider: string, error: { readonly errorDescription: string | undefined }) =>
  new UpstreamRejected({
    provider,
    error: "invalid_grant",
    errorDescription: error.errorDescription,
    message: `provider "${provider}" answered invalid_grant`
  })
