import { randomBytes } from "node:crypto"
import { AuthorizationServer, type ProviderConfig } from "@token-broker/core"
import { Effect, Either, Redacted } from "effect"

/** One line of the doctor's report (see doctor.ts). */
export interface ProviderCheck {
  readonly name: string
  readonly status: "ok" | "warn" | "fail" | "skip"
  readonly detail: string
  readonly fix?: string | undefined
}

const TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"

/** The provider's answer to a harmless client-authenticated request. */
type Probe =
  | { readonly outcome: "accepted"; readonly how: string }
  | { readonly outcome: "refused"; readonly how: string }
  | { readonly outcome: "unknown"; readonly how: string }

const randomToken = () => Redacted.make(randomBytes(24).toString("base64url"))

const isCredentialsRefusal = (error: { readonly error: string; readonly status?: number | undefined }) =>
  error.error === "invalid_client" || error.error === "unauthorized_client" || error.status === 401

/**
 * A request that proves the client credentials and changes nothing: RFC 7009 revocation of a random
 * token (answered 200 for any token once the client is authenticated, 401 invalid_client otherwise);
 * without a revocation endpoint, a refresh with a random refresh token (invalid_grant: accepted).
 */
const probe = (provider: ProviderConfig, hasRevocation: boolean): Effect.Effect<Probe> =>
  Effect.gen(function* () {
    const built = yield* Effect.either(AuthorizationServer.make([provider]))
    if (Either.isLeft(built)) return { outcome: "unknown", how: built.left.message } as const
    const client = yield* Effect.orDie(built.right.get(provider.id))
    if (hasRevocation) {
      const revoked = yield* Effect.either(
        client.revoke({ token: randomToken(), tokenTypeHint: "refresh_token" })
      )
      if (Either.isRight(revoked)) {
        return { outcome: "accepted", how: "revocation of a random token answered 200" } as const
      }
      const error = revoked.left
      if (error._tag === "UpstreamRejected" && isCredentialsRefusal(error)) {
        return { outcome: "refused", how: `revocation answered ${describe(error)}` } as const
      }
      return { outcome: "unknown", how: `revocation failed: ${error.message}` } as const
    }
    const refreshed = yield* Effect.either(client.refresh({ refreshToken: randomToken() }))
    if (Either.isRight(refreshed)) return { outcome: "accepted", how: "a refresh was answered" } as const
    const error = refreshed.left
    if (error._tag === "InvalidGrant") {
      return error.refusal === undefined
        ? ({
            outcome: "accepted",
            how: "a refresh with a random refresh token answered invalid_grant"
          } as const)
        : ({
            outcome: "unknown",
            how: `a refresh with a random refresh token answered a bare HTTP ${error.refusal.status}: the provider does not say whether it accepted the credentials`
          } as const)
    }
    if (error._tag === "UpstreamRejected" && isCredentialsRefusal(error)) {
      return { outcome: "refused", how: `a refresh answered ${describe(error)}` } as const
    }
    const why = error._tag === "UnreadableAnswer" ? `an unreadable answer (${error.problem})` : error.message
    return { outcome: "unknown", how: `a refresh failed: ${why}` } as const
  })

const describe = (error: { readonly error: string; readonly status?: number | undefined }) =>
  error.error === "unexpected_response"
    ? `HTTP ${error.status ?? "?"} without an OAuth error`
    : `${error.error}${error.status === undefined ? "" : ` (HTTP ${error.status})`}`

const withEncoding = (provider: ProviderConfig, encoding: "form" | "plain"): ProviderConfig =>
  provider.clientAuthentication.method === "client_secret_basic"
    ? { ...provider, clientAuthentication: { ...provider.clientAuthentication, encoding } }
    : provider

const ENCODING_NAME = { form: "form-encoded (RFC 6749)", plain: "plain" } as const

/** The client credentials, proven by a harmless request; for Basic, with both encodings. */
export const credentialChecks = (
  provider: ProviderConfig,
  index: number,
  metadata: Record<string, unknown> | null
): Effect.Effect<ReadonlyArray<ProviderCheck>> =>
  Effect.gen(function* () {
    const name = `provider ${provider.id} credentials`
    const auth = provider.clientAuthentication
    if (auth.method === "none") return [{ name, status: "skip", detail: "a public client (method none)" }]
    const hasRevocation = metadata === null || typeof metadata.revocation_endpoint === "string"
    const fixCredentials = `check providers[${index}].clientId and the client's credentials, and that the provider registered the client for ${auth.method}`
    if (auth.method !== "client_secret_basic") {
      const result = yield* probe(provider, hasRevocation)
      return [verdict(name, result, `${auth.method} accepted`, fixCredentials)]
    }
    const configured = auth.encoding ?? "form"
    const other = configured === "form" ? "plain" : "form"
    const [mine, theirs] = yield* Effect.all(
      [
        probe(withEncoding(provider, configured), hasRevocation),
        probe(withEncoding(provider, other), hasRevocation)
      ],
      { concurrency: 2 }
    )
    if (mine.outcome === "refused" && theirs.outcome === "accepted") {
      return [
        {
          name,
          status: "fail",
          detail: `the provider refuses Basic credentials ${ENCODING_NAME[configured]} (${mine.how}) but accepts them ${ENCODING_NAME[other]}`,
          fix: `set providers[${index}].clientAuthentication.encoding: ${other}`
        }
      ]
    }
    const accepts =
      mine.outcome === "accepted" && theirs.outcome === "accepted"
        ? `Basic credentials accepted ${ENCODING_NAME[configured]} (configured) and ${ENCODING_NAME[other]}`
        : `Basic credentials accepted ${ENCODING_NAME[configured]} (configured)${
            theirs.outcome === "refused" ? `, refused ${ENCODING_NAME[other]}` : ""
          }`
    return [verdict(name, mine, accepts, fixCredentials)]
  })

const verdict = (name: string, result: Probe, accepted: string, fix: string): ProviderCheck =>
  result.outcome === "accepted"
    ? { name, status: "ok", detail: `${accepted}: ${result.how}` }
    : result.outcome === "refused"
      ? { name, status: "fail", detail: `the provider refuses the client credentials: ${result.how}`, fix }
      : { name, status: "warn", detail: `could not prove the client credentials: ${result.how}`, fix }

const listOf = (value: unknown): ReadonlyArray<string> | null =>
  Array.isArray(value) ? value.filter((v): v is string => typeof v === "string") : null

/** What the config uses, against what the provider's metadata says it offers. */
export const featureChecks = (
  provider: ProviderConfig,
  index: number,
  metadata: Record<string, unknown> | null
): ReadonlyArray<ProviderCheck> => {
  const name = `provider ${provider.id} features`
  if (metadata === null) return [{ name, status: "skip", detail: "the discovery document could not be read" }]
  const checks: Array<ProviderCheck> = []
  const grants = listOf(metadata.grant_types_supported)
  const scopes = listOf(metadata.scopes_supported)
  if (grants !== null && !grants.includes("refresh_token")) {
    checks.push({
      name,
      status: "warn",
      detail: `grant_types_supported (${grants.join(", ")}) does not list refresh_token; the broker refreshes anyway, and some providers (Glewlwyd) do refresh`,
      fix: "check that the provider issues refresh tokens to this client (a consent with offline_access, then: token-broker token)"
    })
  }
  if (provider.tokenExchange !== undefined && !(grants ?? []).includes(TOKEN_EXCHANGE)) {
    checks.push({
      name,
      status: "fail",
      detail: `tokenExchange is configured but grant_types_supported ${grants === null ? "is absent" : `(${grants.join(", ")})`} does not list ${TOKEN_EXCHANGE}`,
      fix: `remove providers[${index}].tokenExchange, or enable RFC 8693 token exchange at the provider`
    })
  }
  if (typeof metadata.revocation_endpoint !== "string") {
    checks.push({
      name,
      status: "warn",
      detail:
        "no revocation_endpoint: revoking a grant deletes it here only; its tokens stay valid at the provider",
      fix: "revoke the broker's tokens at the provider itself when a grant is revoked"
    })
  }
  if (
    provider.defaultScopes.includes("offline_access") &&
    scopes !== null &&
    !scopes.includes("offline_access")
  ) {
    checks.push({
      name,
      status: "fail",
      detail: `scopes asks offline_access but scopes_supported (${scopes.join(", ")}) does not list it`,
      fix: `remove offline_access from providers[${index}].scopes (the provider may issue refresh tokens without it), or enable it at the provider`
    })
  }
  if (checks.length === 0) {
    const used = [
      "refresh",
      ...(provider.tokenExchange === undefined ? [] : ["token exchange"]),
      "revocation",
      ...(provider.defaultScopes.includes("offline_access") ? ["offline_access"] : [])
    ]
    checks.push({
      name,
      status: "ok",
      detail: `the metadata offers what the config uses (${used.join(", ")})`
    })
  }
  return checks
}
