import type { TokenBrokerError } from "./Errors.js"

/**
 * What the user's browser is told after consent, shared by every app that serves a consent callback
 * (the HTTP broker, the MCP server): the page's security headers, and a fixed message per RFC 6749
 * section 4.1.2.1 error code. The provider's `error_description` (and an unknown `error`) is text anyone
 * can put in a link to this trusted page, so it is never shown; it stays in the typed error for logs.
 */
export const RESULT_PAGE_HEADERS: Readonly<Record<string, string>> = {
  "content-type": "text/html; charset=utf-8",
  "cache-control": "no-store",
  "referrer-policy": "no-referrer",
  "content-security-policy":
    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "x-frame-options": "DENY",
  "x-content-type-options": "nosniff"
}

const UPSTREAM_MESSAGES: Readonly<Record<string, string>> = {
  access_denied: "You did not allow access. Nothing was connected.",
  invalid_scope: "The provider does not offer the access that was asked for. Nothing was connected.",
  server_error: "The provider had a problem and could not finish. Try again later.",
  temporarily_unavailable: "The provider is busy or down for maintenance. Try again shortly.",
  login_required: "You need to sign in at the provider. Start again and sign in.",
  consent_required: "The provider needs your consent. Start again and allow access.",
  interaction_required: "The provider needs you to act in the browser. Start again.",
  invalid_request: "The provider refused the request (a configuration problem of this server).",
  unauthorized_client: "The provider does not let this server ask for access (a configuration problem).",
  unsupported_response_type: "The provider refused the request (a configuration problem of this server)."
}

/** A fixed title and message for a failed consent: never text from the provider or the link. */
export const consentFailure = (
  error: TokenBrokerError
): { readonly title: string; readonly detail: string } => {
  if (error._tag === "UpstreamRejected") {
    return {
      title: "Not connected",
      detail: Object.hasOwn(UPSTREAM_MESSAGES, error.error)
        ? (UPSTREAM_MESSAGES[error.error] ?? "")
        : "The provider did not grant access. Nothing was connected; start again from your app."
    }
  }
  if (error._tag === "AuthorizationNotPending") {
    return {
      title: "Nothing to finish here",
      detail: "This consent link was already used or has expired. Start again from your app."
    }
  }
  if (error._tag === "IdentityMismatch") {
    return {
      title: "Not connected",
      detail:
        "You signed in at the provider as a different user than the one who started this. Sign in as the same user and try again."
    }
  }
  if (error._tag === "UpstreamUnavailable" || error._tag === "StorageUnavailable") {
    return { title: "Not connected", detail: "A service could not be reached; try again shortly." }
  }
  return { title: "Not connected", detail: "The consent could not be finished; start again from your app." }
}
