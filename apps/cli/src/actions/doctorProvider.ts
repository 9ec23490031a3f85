import { randomBytes } from "node:crypto"
import { AuthorizationServer, offlineScopeOf, type ProviderConfig } from "@token-broker/core"
import { Effect, Either, Redacted } from "effect"

/** One line of the doctor's report (see doctor.ts). */
export interface ProviderCheck {
  readonly name: string
  readonly status: "ok" | "warn" | "fail" | "skip"
  readonly detail: string
  readonly fix?: string | undefined
}

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
  metadata: AuthorizationServer.ProviderMetadata
): Effect.Effect<ReadonlyArray<ProviderCheck>> =>
  Effect.gen(function* () {
    const name = `provider ${provider.id} credentials`
    const auth = provider.clientAuthentication
    if (auth.method === "none") return [{ name, status: "skip", detail: "a public client (method none)" }]
    // the metadata with the configured endpoints over it: what the probe's own client uses
    const hasRevocation = typeof metadata.document.revocation_endpoint === "string"
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

/**
 * What the config uses, against what the provider's metadata says it offers, by core's rules: token
 * exchange as the broker's start-up check judges it (refused when `grant_types_supported` lacks it, a
 * warning when the metadata says nothing), revocation at the endpoint the broker would use (the
 * metadata's or `endpoints.revocation`), the refresh grant, and the scope every consent asks for a refresh
 * token (`offlineAccessScope`). With discovery "none" there is no metadata to check features against.
 */
export const featureChecks = (
  client: AuthorizationServer.ProviderClient,
  index: number,
  metadata: AuthorizationServer.ProviderMetadata
): Effect.Effect<ReadonlyArray<ProviderCheck>> =>
  Effect.gen(function* () {
    const provider = client.config
    const name = `provider ${provider.id} features`
    const document = metadata.document
    const checks: Array<ProviderCheck> = []
    const offline = offlineScopeOf(provider)
    const none = metadata.discovery === "none"
    if (none) {
      checks.push({
        name,
        status: "skip",
        detail: `discovery: none, so there is no metadata to check features against (refresh${
          offline === null ? "" : `, the ${offline} scope`
        }); they are known at first use`
      })
    }
    const exchange = yield* Effect.either(AuthorizationServer.checkProviderTokenExchange(client, index))
    if (Either.isLeft(exchange)) {
      checks.push({
        name,
        status: "fail",
        detail: exchange.left.message,
        fix: `remove providers[${index}].tokenExchange, or enable RFC 8693 token exchange at the provider`
      })
    } else if (exchange.right !== null) {
      checks.push({
        name,
        status: "warn",
        detail: exchange.right,
        fix: "try one exchange (a session token through the broker) to learn whether the provider supports it"
      })
    }
    const grants = listOf(document.grant_types_supported)
    const scopes = listOf(document.scopes_supported)
    if (grants !== null && !grants.includes("refresh_token")) {
      checks.push({
        name,
        status: "warn",
        detail: `grant_types_supported (${grants.join(", ")}) does not list refresh_token; the broker refreshes anyway, and some providers (Glewlwyd) do refresh`,
        fix: "check that the provider issues refresh tokens to this client (a consent, then: token-broker token)"
      })
    }
    if (typeof document.revocation_endpoint !== "string") {
      checks.push({
        name,
        status: "warn",
        detail: `no revocation endpoint (${none ? "" : "not in the metadata, "}no providers[${index}].endpoints.revocation): revoking a grant deletes it here only; its tokens stay valid at the provider`,
        fix: "revoke the broker's tokens at the provider itself when a grant is revoked"
      })
    }
    if (offline !== null && scopes !== null && !scopes.includes(offline)) {
      checks.push({
        name,
        status: "fail",
        detail: `every consent asks ${offline} (offlineAccessScope) but scopes_supported (${scopes.join(", ")}) does not list it`,
        fix: `set providers[${index}].offlineAccessScope to the scope that asks this provider for a refresh token, or to null when it issues refresh tokens without one`
      })
    }
    if (checks.length === 0) {
      const used = [
        "refresh",
        ...(provider.tokenExchange === undefined ? [] : ["token exchange"]),
        "revocation",
        ...(offline === null ? [] : [offline])
      ]
      checks.push({
        name,
        status: "ok",
        detail: `the metadata offers what the config uses (${used.join(", ")})`
      })
    }
    return checks
  })
