import { createHash } from "node:crypto"
import type { ProviderConfig } from "@token-broker/core"
import type { DevIdp } from "@token-broker/dev-idp"
import { Duration, Redacted } from "effect"
import type { PlainProvider } from "./workerProtocol.js"

export const PROVIDER = "notes"

/** Provider "notes" as plain data: dev-idp's confidential `token-broker` client for the notes API. */
export const plainProvider = (idp: DevIdp, requestTimeoutMs = 10_000): PlainProvider => {
  const client = idp.client("token-broker")
  return {
    id: PROVIDER,
    issuer: idp.issuer,
    clientId: client.clientId,
    clientSecret: client.clientSecret ?? "",
    redirectUri: `${idp.issuer}/__dev/callback`,
    resource: idp.notesAudience,
    requestTimeoutMs
  }
}

/** The provider config every broker of a test builds from the same plain data. */
export const providerConfig = (plain: PlainProvider): ProviderConfig => ({
  id: plain.id,
  issuer: plain.issuer,
  clientId: plain.clientId,
  clientAuthentication: { method: "client_secret_basic", clientSecret: Redacted.make(plain.clientSecret) },
  redirectUri: plain.redirectUri,
  defaultScopes: ["notes:read", "notes:write"],
  resource: plain.resource,
  allowInsecureRequests: true,
  requestTimeout: Duration.millis(plain.requestTimeoutMs)
})

/** A token's short fingerprint: enough to tell tokens apart, nothing to replay. */
export const tokenHash = (token: string): string =>
  createHash("sha256").update(token).digest("hex").slice(0, 16)
