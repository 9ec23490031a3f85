import type { CallerPolicy } from "@token-broker/config"
import { allowsAnyScope, allowsProvider, allowsSubject, deniedScope } from "./Callers.js"
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
