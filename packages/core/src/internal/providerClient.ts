import { Clock, Effect, Either, Redacted } from "effect"
import * as client from "openid-client"
import type { Agent } from "undici"
import { InvalidGrant, type ProviderClient, type TokenSet, UnreadableAnswer } from "../AuthorizationServer.js"
import { UpstreamRejected, type UpstreamUnavailable } from "../Errors.js"
import { expectsIdToken, metadataUrl } from "../Provider.js"
import { type Prepared, timeoutSeconds } from "./preparedProvider.js"
import { call, rejectedGrant } from "./providerCall.js"
import { jsonObject, makeFetch } from "./providerFetch.js"
import { successorIn, toIntrospection, tokenParameters, toTokenSet } from "./tokenResponses.js"
import { describeRefusal, isRefusalWithoutError, type MappedError } from "./upstreamError.js"

export const TOKEN_EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
export const ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"

/** One provider's client over its (discovered or configured) metadata. */
export const makeProviderClient = (
  prepared: Prepared,
  metadata: Effect.Effect<client.ServerMetadata, UpstreamUnavailable | UpstreamRejected>,
  agent: Agent
): ProviderClient => {
  const { provider, auth, insecure } = prepared
  const timeout = timeoutSeconds(provider)
  const idToken = expectsIdToken(provider)

  /** A Configuration per request: its fetch carries this request's interruption signal. */
  const configuration = (
    server: client.ServerMetadata,
    signal: AbortSignal,
    onResponse?: (response: Response) => void
  ) => {
    const config = new client.Configuration(server, provider.clientId, undefined, auth)
    config.timeout = timeout
    config[client.customFetch] = makeFetch(
      agent,
      provider.internalBaseUrl,
      signal,
      onResponse,
      provider.invalidGrantErrors ?? []
    )
    if (insecure) client.allowInsecureRequests(config)
    return config
  }

  const tokenRequest = (
    operation: string,
    run: (
      config: client.Configuration
    ) => Promise<client.TokenEndpointResponse & client.TokenEndpointResponseHelpers>,
    withIdToken = false
  ): Effect.Effect<TokenSet, MappedError> =>
    Effect.gen(function* () {
      const server = yield* metadata
      const response = yield* call(provider.id, operation, (signal) => run(configuration(server, signal)))
      const now = yield* Clock.currentTimeMillis
      return toTokenSet(response, now, withIdToken)
    })

  /**
   * A request at one of the endpoints a provider may not have (userinfo, revocation, introspection):
   * refused with `<operation>_not_supported` when its metadata names none. No grant is refreshed there,
   * so an `invalid_grant` answer is a rejection like any other.
   */
  const atOptionalEndpoint = <A>(
    operation: "userinfo" | "revocation" | "introspection",
    run: (server: client.ServerMetadata, endpoint: string) => Effect.Effect<A, MappedError>
  ) =>
    Effect.gen(function* () {
      const server = yield* metadata
      const endpoint = server[`${operation}_endpoint`]
      if (endpoint === undefined) {
        return yield* new UpstreamRejected({
          provider: provider.id,
          error: `${operation}_not_supported`,
          message: `provider "${provider.id}" has no ${operation} endpoint in its discovery document`
        })
      }
      return yield* run(server, endpoint)
    }).pipe(Effect.catchTag("InvalidGrant", (error) => Effect.fail(rejectedGrant(provider.id, error))))

  const exchangeRequest = (request: Parameters<ProviderClient["exchange"]>[0]) =>
    tokenRequest("token exchange", (config) => {
      const parameters: Record<string, string> = {
        subject_token: Redacted.value(request.subjectToken),
        subject_token_type: ACCESS_TOKEN_TYPE,
        requested_token_type: ACCESS_TOKEN_TYPE,
        ...tokenParameters(provider, request.scopes, request.resource)
      }
      if (request.audience !== undefined) parameters.audience = request.audience
      if (request.actorToken !== undefined) {
        parameters.actor_token = Redacted.value(request.actorToken)
        parameters.actor_token_type = ACCESS_TOKEN_TYPE
      }
      return client.genericGrantRequest(config, TOKEN_EXCHANGE_GRANT, parameters)
    })

  const providerClient: ProviderClient = {
    config: provider,
    metadata: Effect.map(metadata, (server) => ({
      discovery: provider.discovery ?? "openid-configuration",
      url: metadataUrl(provider),
      document: server as Readonly<Record<string, unknown>>
    })),
    refresh: (request) =>
      Effect.gen(function* () {
        const server = yield* metadata
        // A copy of the answer, read only when a 2xx fails validation: the provider has then rotated
        // the refresh token, and the successor must not be dropped with the rest of the body. A 400/401
        // is kept too: without an OAuth error it is a refusal, and the log says what came back.
        let answer: Response | undefined
        const result = yield* call(provider.id, "refresh", (signal) =>
          client.refreshTokenGrant(
            configuration(server, signal, (response) => {
              answer =
                response.ok || response.status === 400 || response.status === 401
                  ? response.clone()
                  : undefined
            }),
            Redacted.value(request.refreshToken),
            tokenParameters(provider, request.scopes, request.resource)
          )
        ).pipe(Effect.either)
        if (Either.isRight(result)) return toTokenSet(result.right, yield* Clock.currentTimeMillis, false)
        const kept = answer
        if (kept !== undefined && !kept.ok && isRefusalWithoutError(kept.status, result.left)) {
          const refusal = yield* Effect.promise(() => describeRefusal(kept))
          return yield* Effect.fail(
            new InvalidGrant(provider.id, `HTTP ${refusal.status} without an OAuth error`, refusal)
          )
        }
        if (kept === undefined || !kept.ok || result.left._tag === "InvalidGrant") {
          return yield* Effect.fail(result.left)
        }
        const problem = result.left._tag === "UpstreamRejected" ? result.left.error : result.left.reason
        const successor = yield* Effect.promise(() => kept.text().then(successorIn, () => null))
        return yield* Effect.fail(new UnreadableAnswer(provider.id, kept.status, successor, problem))
      }),
    tokenExchangeSupport: Effect.map(metadata, (server) =>
      Array.isArray(server.grant_types_supported)
        ? server.grant_types_supported.includes(TOKEN_EXCHANGE_GRANT)
          ? ("listed" as const)
          : ("not_listed" as const)
        : ("unknown" as const)
    ),
    exchange: (request) =>
      Effect.gen(function* () {
        const server = yield* metadata
        if (
          Array.isArray(server.grant_types_supported) &&
          !server.grant_types_supported.includes(TOKEN_EXCHANGE_GRANT)
        ) {
          return yield* noTokenExchange(provider.id, "its metadata's grant_types_supported does not list it")
        }
        return yield* exchangeRequest(request).pipe(
          Effect.catchIf(
            (error) => error._tag === "UpstreamRejected" && error.error === "unsupported_grant_type",
            () => noTokenExchange(provider.id, "it answered unsupported_grant_type")
          )
        )
      }),
    clientCredentials: (request) =>
      tokenRequest("client_credentials", (config) =>
        client.clientCredentialsGrant(config, tokenParameters(provider, request.scopes, request.resource))
      ),
    authorizationUrl: (request) =>
      Effect.gen(function* () {
        const server = yield* metadata
        return yield* call(provider.id, "authorization URL", async (signal) => {
          const parameters: Record<string, string> = {}
          if (request.prompt !== undefined) parameters.prompt = request.prompt
          // configured extras (never a reserved name: refused at load) may replace `prompt`
          Object.assign(parameters, provider.authorizationParameters, {
            response_type: "code",
            redirect_uri: request.redirectUri,
            scope: request.scopes.join(" "),
            state: request.state,
            code_challenge: request.codeChallenge,
            code_challenge_method: "S256"
          })
          // the nonce lives in the ID token: a plain OAuth 2.0 provider issues none
          if (idToken) parameters.nonce = request.nonce
          const resource = request.resource ?? provider.resource
          if (resource !== undefined) parameters.resource = resource
          return client.buildAuthorizationUrl(configuration(server, signal), parameters)
        }).pipe(
          Effect.catchIf(
            (error): error is Extract<MappedError, { _tag: "InvalidGrant" }> => error._tag === "InvalidGrant",
            () => Effect.die("buildAuthorizationUrl makes no request")
          )
        )
      }),
    exchangeCode: (request) =>
      tokenRequest(
        "code exchange",
        (config) => {
          // The redirect_uri sent is the registered one, whatever URL the callback arrived on.
          const current = new URL(request.redirectUri)
          current.search = request.callbackUrl.search
          current.hash = ""
          const resource = request.resource ?? provider.resource
          return client.authorizationCodeGrant(
            config,
            current,
            {
              expectedState: request.expectedState,
              ...(idToken ? { expectedNonce: request.nonce } : {}),
              pkceCodeVerifier: Redacted.value(request.codeVerifier),
              idTokenExpected: idToken
            },
            resource === undefined ? undefined : { resource }
          )
        },
        idToken
      ),
    userinfoSubject: (accessToken) =>
      atOptionalEndpoint("userinfo", (server, endpoint) =>
        Effect.gen(function* () {
          const field = provider.userinfoSubjectField ?? "sub"
          const response = yield* call(provider.id, "userinfo", (signal) =>
            client.fetchProtectedResource(
              configuration(server, signal),
              Redacted.value(accessToken),
              new URL(endpoint),
              "GET",
              undefined,
              new Headers({ accept: "application/json" })
            )
          )
          const body = yield* Effect.promise(() =>
            response.text().then(
              (text) => (response.ok ? jsonObject(text) : undefined),
              () => undefined
            )
          )
          const value = body?.[field]
          if (typeof value === "string" && value.length > 0) return value
          if (typeof value === "number" && Number.isFinite(value)) return String(value)
          return yield* new UpstreamRejected({
            provider: provider.id,
            error: "invalid_userinfo",
            status: response.status,
            message: response.ok
              ? `userinfo at provider "${provider.id}" answered no "${field}" (a string or number) naming the account (set userinfoSubjectField)`
              : `userinfo at provider "${provider.id}" answered HTTP ${response.status}`
          })
        })
      ),
    revoke: (request) =>
      atOptionalEndpoint("revocation", (server) =>
        Effect.asVoid(
          call(provider.id, "revocation", (signal) =>
            client.tokenRevocation(configuration(server, signal), Redacted.value(request.token), {
              token_type_hint: request.tokenTypeHint
            })
          )
        )
      ),
    introspect: (token) =>
      atOptionalEndpoint("introspection", (server) =>
        Effect.map(
          call(provider.id, "introspection", (signal) =>
            client.tokenIntrospection(configuration(server, signal), Redacted.value(token))
          ),
          toIntrospection
        )
      )
  }
  return providerClient
}

/** The provider does not do RFC 8693 token exchange (`why` says how that is known). */
const noTokenExchange = (provider: string, why: string) =>
  Effect.fail(
    new UpstreamRejected({
      provider,
      error: "unsupported_grant_type",
      message: `provider "${provider}" does not support RFC 8693 token exchange (${why}): remove tokenExchange from its config, or use a provider that supports it`
    })
  )
