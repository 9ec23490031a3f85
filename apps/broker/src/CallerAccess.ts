import type { CallerPolicy } from "@token-broker/config"
import {
  allowsAllProviders,
  allowsAllSubjects,
  allowsAnyScope,
  allowsProvider,
  allowsSubject,
  deniedScope
} from "./Callers.js"
import { forbidden } from "./Problems.js"

/**
 * What an authenticated caller's policy lets it do at the grants API, as the 403 problems the routes
 * answer (each names its `reason`). The token endpoint words the same checks as RFC 6749 errors itself.
 */

export const needBackgroundTokens = (caller: CallerPolicy) => {
  if (!caller.backgroundTokens) {
    throw forbidden(`Caller "${caller.id}" may not get background tokens`, {
      reason: "background_tokens_not_allowed"
    })
  }
}

export const checkGrantAccess = (caller: CallerPolicy, subject: string, provider: string) => {
  if (!allowsProvider(caller, provider)) {
    throw forbidden(`Caller "${caller.id}" may not use provider "${provider}"`, {
      reason: "provider_not_allowed"
    })
  }
  if (!allowsSubject(caller, subject)) {
    throw forbidden(`Caller "${caller.id}" may not act for this subject`, { reason: "subject_not_allowed" })
  }
}

export const needGrants = (caller: CallerPolicy, level: "read" | "manage") => {
  if (caller.grants === "manage" || (level === "read" && caller.grants === "read")) return
  throw forbidden(
    `Caller "${caller.id}" may not ${level === "read" ? "read" : "manage"} grants (grants: ${caller.grants})`,
    { reason: "grants_not_allowed" }
  )
}

/**
 * A route on one grant (`/v1/grants/:subject/:provider...`): the caller may act on grants at `level` and
 * on this subject and provider. Answers the route's subject and provider.
 */
export const checkGrantRoute = <P extends { readonly subject: string; readonly provider: string }>(
  caller: CallerPolicy,
  params: P,
  level: "read" | "manage"
): P => {
  needGrants(caller, level)
  checkGrantAccess(caller, params.subject, params.provider)
  return params
}

/** The list filters a caller limited to some providers or some subjects must narrow by. */
const LIST_LIMITS = [
  {
    filter: "provider",
    allowsAll: allowsAllProviders,
    allows: allowsProvider,
    reason: "provider_not_allowed"
  },
  { filter: "subject", allowsAll: allowsAllSubjects, allows: allowsSubject, reason: "subject_not_allowed" }
] as const

/**
 * A caller not allowed every provider (every subject) lists grants only filtered by one of its own: an
 * unfiltered list would show it grants it may not act on.
 */
export const checkListFilter = (
  caller: CallerPolicy,
  filter: { readonly provider?: string | undefined; readonly subject?: string | undefined }
) => {
  for (const limit of LIST_LIMITS) {
    const value = filter[limit.filter]
    if (!limit.allowsAll(caller) && (value === undefined || !limit.allows(caller, value))) {
      throw forbidden(
        `Caller "${caller.id}" may list only its own ${limit.filter}s: filter by one of them (?${limit.filter}=)`,
        { reason: limit.reason }
      )
    }
  }
}

/**
 * The scopes to ask for: the named ones, or (none named) the caller's own - never the provider's
 * defaults beyond the caller's policy. `undefined` lets core use the provider's defaults (a caller
 * allowed any scope).
 */
export const grantedScopes = (
  caller: CallerPolicy,
  asked: ReadonlyArray<string> | undefined
): ReadonlyArray<string> | undefined => {
  const scopes = asked ?? (allowsAnyScope(caller) ? undefined : caller.scopes)
  const denied = scopes === undefined ? undefined : deniedScope(caller, scopes)
  if (denied !== undefined) {
    throw forbidden(`Caller "${caller.id}" may not ask for scope "${denied}"`, {
      reason: "scope_not_allowed"
    })
  }
  return scopes
}
