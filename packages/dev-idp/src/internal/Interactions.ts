import type { IncomingMessage, ServerResponse } from "node:http"
import type Provider from "oidc-provider"
import type { DevIdpUser } from "../Config.js"
import { escapeHtml, readBody, sendHtml } from "./Http.js"

/** The path prefix of the login and consent pages. */
export const INTERACTION_PREFIX = "/interaction/"

const layout = (title: string, body: string): string => `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>${escapeHtml(title)} - dev-idp</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem}
label,input,button{display:block;width:100%;margin:.4rem 0}input{padding:.4rem}button{padding:.5rem}
.error{color:#b00020}.note{color:#555;font-size:.85rem}</style></head>
<body><main>
<p class="note">dev-idp: a development OpenID Provider. Never use it in production.</p>
${body}
</main></body></html>`

const loginPage = (uid: string, clientId: string, error: string | undefined): string =>
  layout(
    "Sign in",
    `<h1>Sign in</h1>
<p>to continue to <strong>${escapeHtml(clientId)}</strong></p>
${error === undefined ? "" : `<p class="error" data-error="invalid_credentials">${escapeHtml(error)}</p>`}
<form method="post" action="${INTERACTION_PREFIX}${escapeHtml(uid)}/login" data-step="login">
<label>Username <input name="username" autocomplete="username" required autofocus></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<button type="submit">Sign in</button>
</form>`
  )

const consentPage = (uid: string, clientId: string, scopes: ReadonlyArray<string>): string =>
  layout(
    "Consent",
    `<h1>Allow access?</h1>
<p><strong>${escapeHtml(clientId)}</strong> asks for:</p>
<ul>${scopes.map((scope) => `<li data-scope="${escapeHtml(scope)}">${escapeHtml(scope)}</li>`).join("")}</ul>
<form method="post" action="${INTERACTION_PREFIX}${escapeHtml(uid)}/confirm" data-step="consent">
<button type="submit" autofocus>Allow</button>
</form>
<form method="post" action="${INTERACTION_PREFIX}${escapeHtml(uid)}/abort" data-step="abort">
<button type="submit">Deny</button>
</form>`
  )

/** The error page oidc-provider renders (`renderError`), marked up for the login driver. */
export const errorPage = (out: Record<string, unknown>): string => {
  const error = typeof out.error === "string" ? out.error : "server_error"
  const description = typeof out.error_description === "string" ? out.error_description : ""
  return layout(
    "Error",
    `<h1>Something went wrong</h1>
<div data-step="error" data-error="${escapeHtml(error)}"><p><strong>${escapeHtml(error)}</strong></p>
<p data-error-description>${escapeHtml(description)}</p></div>`
  )
}

interface InteractionDeps {
  readonly provider: Provider
  readonly users: ReadonlyArray<DevIdpUser>
}

const requestedScopes = (details: Record<string, unknown>): string[] => {
  const scopes = new Set<string>()
  const oidc = details.missingOIDCScope
  if (Array.isArray(oidc)) for (const scope of oidc) if (typeof scope === "string") scopes.add(scope)
  const resources = details.missingResourceScopes
  if (resources !== null && typeof resources === "object") {
    for (const list of Object.values(resources)) {
      if (Array.isArray(list)) for (const scope of list) if (typeof scope === "string") scopes.add(scope)
    }
  }
  return [...scopes]
}

/**
 * Serves the login and consent pages (GET /interaction/:uid, POST .../login, .../confirm, .../abort).
 * The login checks the configured users' passwords; the consent grants everything that was asked.
 */
export const handleInteraction = async (
  deps: InteractionDeps,
  req: IncomingMessage,
  res: ServerResponse,
  path: string
): Promise<void> => {
  const { provider } = deps
  const [uid, action] = path.slice(INTERACTION_PREFIX.length).split("/")
  const details = await provider.interactionDetails(req, res)
  if (uid !== details.uid) throw new Error("interaction mismatch")
  const clientId = String(details.params.client_id ?? "")
  const promptDetails = details.prompt.details as Record<string, unknown>

  if (req.method === "GET" && action === undefined) {
    if (details.prompt.name === "login")
      return sendHtml(res, 200, loginPage(details.uid, clientId, undefined))
    return sendHtml(res, 200, consentPage(details.uid, clientId, requestedScopes(promptDetails)))
  }
  if (req.method !== "POST") return sendHtml(res, 405, errorPage({ error: "method_not_allowed" }))

  const form = new URLSearchParams((await readBody(req)).toString("utf8"))
  switch (action) {
    case "login": {
      const username = form.get("username") ?? ""
      const password = form.get("password") ?? ""
      const user = deps.users.find((candidate) => candidate.username === username)
      if (user === undefined || user.password !== password) {
        return sendHtml(res, 200, loginPage(details.uid, clientId, "Invalid username or password."))
      }
      return provider.interactionFinished(
        req,
        res,
        { login: { accountId: user.sub } },
        { mergeWithLastSubmission: false }
      )
    }
    case "confirm": {
      const accountId = details.session?.accountId
      if (accountId === undefined) return sendHtml(res, 400, errorPage({ error: "login_required" }))
      const grant =
        (details.grantId === undefined ? undefined : await provider.Grant.find(details.grantId)) ??
        new provider.Grant({ accountId, clientId })
      const oidcScopes = promptDetails.missingOIDCScope
      if (Array.isArray(oidcScopes)) grant.addOIDCScope(oidcScopes.join(" "))
      const claims = promptDetails.missingOIDCClaims
      if (Array.isArray(claims)) grant.addOIDCClaims(claims)
      const resourceScopes = promptDetails.missingResourceScopes
      if (resourceScopes !== null && typeof resourceScopes === "object") {
        for (const [indicator, scopes] of Object.entries(resourceScopes)) {
          if (Array.isArray(scopes)) grant.addResourceScope(indicator, scopes.join(" "))
        }
      }
      const grantId = await grant.save()
      return provider.interactionFinished(
        req,
        res,
        { consent: { grantId } },
        { mergeWithLastSubmission: true }
      )
    }
    case "abort":
      return provider.interactionFinished(
        req,
        res,
        { error: "access_denied", error_description: "the user denied the request" },
        { mergeWithLastSubmission: false }
      )
    default:
      return sendHtml(res, 404, errorPage({ error: "not_found" }))
  }
}
