import type { TokenBroker, TokenBrokerError } from "@token-broker/core"
import { Cause, Duration, type Effect, Exit, Option, Redacted } from "effect"
import { type Caller, errorResult, type ToolContext, type ToolResult } from "../ToolContext.js"

/** What a background token must still have to live when it is handed to a tool (decoded once, not per call). */
const MIN_TTL = Duration.seconds(10)

const isTyped = (error: unknown): error is TokenBrokerError =>
  typeof error === "object" && error !== null && "_tag" in error && "code" in error

/** Whether the provider's tokens come from RFC 8693 exchange of the caller's token (no stored grant). */
export const usesExchange = (ctx: ToolContext, provider: string): boolean =>
  ctx.exchangeProviders.has(provider)

const retryHint = (retryAfter: Duration.Duration | undefined) =>
  retryAfter === undefined
    ? "try again shortly"
    : `try again in ${Math.ceil(Duration.toSeconds(retryAfter))} s`

/** A failure of the broker, in words a user (and the model relaying them) can act on. */
export const describeFailure = (error: TokenBrokerError, provider: string): string => {
  switch (error._tag) {
    case "UpstreamUnavailable":
      return `"${provider}" cannot be reached right now (${error.reason}); ${retryHint(error.retryAfter)}.`
    case "UpstreamRejected":
      return `"${provider}" refused the request: ${error.error}${error.errorDescription === undefined ? "" : ` (${error.errorDescription})`}. This is a configuration problem of the server, not something to retry.`
    case "InvalidSubjectToken":
    case "AudienceMismatch":
      return `Your sign-in token cannot be exchanged for a "${provider}" token: ${error.message}. Sign in to this MCP server again.`
    case "ProviderNotFound":
      return `No provider "${provider}" is configured.`
    case "StorageUnavailable":
      return "The token store is unavailable; try again shortly."
    case "DecryptionFailed":
      return "A stored grant cannot be decrypted (a key problem of the server); an operator must look at it."
    case "InvalidRequest":
      return `Invalid request: ${error.message}`
    case "ConsentRequired":
      return `You have not connected "${provider}" (${error.reason}).`
    default:
      return error.message
  }
}

/** Runs a broker effect; a typed failure is returned, a defect becomes a generic failure (never its details). */
export const runBroker = async <A>(
  ctx: ToolContext,
  effect: Effect.Effect<A, TokenBrokerError>
): Promise<
  { readonly ok: true; readonly value: A } | { readonly ok: false; readonly error: TokenBrokerError | null }
> => {
  const exit = await ctx.run(effect)
  if (Exit.isSuccess(exit)) return { ok: true, value: exit.value }
  return { ok: false, error: typedFailure(exit.cause) }
}

/** The typed failure of a broker effect; null for a defect (whose details are never shown). */
const typedFailure = (cause: Cause.Cause<TokenBrokerError>): TokenBrokerError | null => {
  const failure = Cause.failureOption(cause)
  return Option.isSome(failure) && isTyped(failure.value) ? failure.value : null
}

const iso = (epochMs: number) => new Date(epochMs).toISOString()

/**
 * Starts consent for the caller and answers with the link (progressive consent): the user opens it in a
 * browser, signs in at the provider and allows access; the callback stores the grant for this subject.
 */
export const consentRequiredResult = async (
  ctx: ToolContext,
  caller: Caller,
  provider: string,
  why: string,
  scopes?: ReadonlyArray<string>
): Promise<ToolResult> => {
  const started = await runBroker(
    ctx,
    ctx.tokenSource.startAuthorization({ subject: caller.subject, provider, scopes })
  )
  if (!started.ok) {
    return errorResult(
      `${why} Starting consent failed: ${started.error === null ? "internal error" : describeFailure(started.error, provider)}`,
      { status: "error", provider, code: started.error?.code ?? "internal_error" }
    )
  }
  const url = started.value.authorizationUrl.href
  return errorResult(
    `Consent required: ${why} Open this link in a browser to connect "${provider}", then try again:\n${url}\n(The link works once, until ${iso(started.value.expiresAt)}.)`,
    {
      status: "consent_required",
      provider,
      authorizationUrl: url,
      expiresAt: iso(started.value.expiresAt)
    }
  )
}

/**
 * Gets an upstream token for the caller with only `scopes` (none: the grant's), then runs `use` with it. Background tokens
 * (from the caller's stored grant) by default; an RFC 8693 session token where the provider is configured
 * for exchange. The caller's own token never goes to the upstream API. A token the source holds in its
 * in-process cache is taken synchronously (no fiber per tool call); any other comes from one run of the
 * runtime, which names why there is none.
 */
export const withUpstreamToken = async (
  ctx: ToolContext,
  caller: Caller,
  providerId: string,
  scopes: ReadonlyArray<string>,
  use: (token: Redacted.Redacted<string>) => Promise<ToolResult>
): Promise<ToolResult> => {
  const provider = ctx.providers.find((p) => p.id === providerId)
  if (provider === undefined) return errorResult(`No provider "${providerId}" is configured.`)
  // no scopes configured: the provider has no fine-grained scopes, use the grant's own
  const only = scopes.length === 0 ? undefined : scopes
  let token: Effect.Effect<TokenBroker.IssuedToken, TokenBrokerError>
  if (usesExchange(ctx, providerId)) {
    const request = { subjectToken: Redacted.make(caller.token), provider: providerId, scopes: only }
    const hit = ctx.tokenSource.cachedSessionToken?.(request)
    if (hit !== undefined) return use(hit.accessToken)
    token = ctx.tokenSource.sessionToken(request)
  } else {
    const request = { subject: caller.subject, provider: providerId, scopes: only, minTtl: MIN_TTL }
    const hit = ctx.tokenSource.cachedBackgroundToken?.(request)
    if (hit !== undefined) return use(hit.accessToken)
    token = ctx.tokenSource.backgroundToken(request)
  }
  const exit = await ctx.run(token)
  if (Exit.isSuccess(exit)) return use(exit.value.accessToken)
  const error = typedFailure(exit.cause)
  if (error === null) return errorResult(`Getting a "${providerId}" token failed (internal error).`)
  if (error._tag === "ConsentRequired") {
    const why =
      error.reason === "no_grant"
        ? `you have not connected "${providerId}" yet.`
        : error.reason === "scope_not_granted"
          ? `your "${providerId}" connection does not include ${scopes.join(", ")}.`
          : `your "${providerId}" connection must be renewed (${error.reason}).`
    return consentRequiredResult(
      ctx,
      caller,
      providerId,
      why,
      error.reason === "scope_not_granted" ? [...new Set([...provider.defaultScopes, ...scopes])] : undefined
    )
  }
  return errorResult(describeFailure(error, providerId), {
    status: "error",
    provider: providerId,
    code: error.code
  })
}
