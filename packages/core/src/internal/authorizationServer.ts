import { Clock, Duration, Effect, Either, Redacted } from "effect"
import { importJWK, type JWK } from "jose"
import * as client from "openid-client"
import { Agent } from "undici"
import {
  type AuthorizationServersService,
  type IntrospectionResult,
  InvalidGrant,
  type ProviderClient,
  type TokenSet,
  UnreadableAnswer
} from "../AuthorizationServer.js"
import { ConfigInvalid, ProviderNotFound, UpstreamRejected, type UpstreamUnavailable } from "../Errors.js"
import {
  type ClientAuthentication,
  expectsIdToken,
  metadataUrl,
  type ProviderConfig,
  type ProviderEndpoints,
  providerSettingsProblem
} from "../Provider.js"
import * as Scopes from "../Scopes.js"
import { cachedWithCooldown } from "./cachedWithCooldown.js"
import { type LinkedSignal, linkedSignal } from "./linkedSignal.js"
import {
  describeRefusal,
  isRefusalWithoutError,
  type MappedError,
  mapUpstreamError
} from "./upstreamError.js"

export const TOKEN_EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
export const ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"

export const DEFAULT_REQUEST_TIMEOUT: Duration.DurationInput = "10 seconds"
export const DEFAULT_DISCOVERY_COOLDOWN: Duration.DurationInput = "5 seconds"

export interface MakeOptions {
  /** How long a failed discovery is remembered before the next call tries again. Default 5 s. */
  readonly discoveryCooldown?: Duration.DurationInput | undefined
}

/**
 * Provider connections are kept alive for one second of idleness at most. A pooled connection that sat
 * idle for about the server's own keep-alive timeout can be closed by the server just as a request is
 * written on it; that request fails as a network error, and since a refresh is never retried after a
 * network error (the provider may have rotated the token), every caller sharing it would fail. No common
 * server closes idle connections sooner than a second, so the race cannot happen.
 */
const dispatcher = new Agent({ keepAliveTimeout: 1_000, keepAliveMaxTimeout: 1_000 })

/** Each response keeps its request's signal link (and so openid-client's timeout) reachable. */
const keepAlive = new WeakMap<Response, LinkedSignal>()

/** A request's own rewriting fetch: public-to-internal rewrite, plus the caller's AbortSignal. */
export const makeFetch =
  (
    rewrite: ProviderConfig["internalBaseUrl"],
    interrupt: AbortSignal | undefined,
    onResponse?: (response: Response) => void,
    invalidGrantErrors: ReadonlyArray<string> = []
  ): client.CustomFetch =>
  async (url, options) => {
    // openid-client's own timeout signal is held strongly by `link` (see linkedSignal), and `link` by
    // the response, for as long as openid-client reads it
    const link = linkedSignal([options.signal, interrupt])
    const init: RequestInit & { duplex?: "half" } = {
      // The same undici major as Node's own fetch; only the type packages differ.
      dispatcher: dispatcher as unknown as NonNullable<RequestInit["dispatcher"]>,
      method: options.method,
      headers: options.headers,
      redirect: options.redirect,
      body: (options.body ?? null) as NonNullable<RequestInit["body"]> | null,
      signal: link.signal
    }
    if (options.duplex !== undefined) init.duplex = options.duplex
    const answer = await fetch(rewriteUrl(rewrite, url), init).catch((error: unknown) => {
      link.done()
      throw error
    })
    const response = options.method === "POST" ? await errorBodyAsError(answer, invalidGrantErrors) : answer
    keepAlive.set(response, link)
    onResponse?.(response)
    return response
  }

const ERROR_BODY_LIMIT = 16 * 1024

/**
 * An OAuth error in the body of an answer to a POST (token, revocation, introspection) becomes an RFC 6749
 * error answer: JSON, status 400 where the provider sent a 2xx (GitHub answers errors with 200, as JSON or
 * as a form body, by the Accept header), and `error` renamed to `invalid_grant` where the provider names a
 * dead grant otherwise (`invalidGrantErrors`, e.g. GitHub's `bad_refresh_token`). A body with an
 * `access_token` is never an error. Every other answer is passed on untouched.
 */
const errorBodyAsError = async (
  response: Response,
  invalidGrantErrors: ReadonlyArray<string>
): Promise<Response> => {
  if (!(response.ok || (response.status >= 400 && response.status < 500))) return response
  const type = (response.headers.get("content-type") ?? "").split(";")[0]?.trim().toLowerCase() ?? ""
  const form = type === "application/x-www-form-urlencoded"
  const json = type === "application/json" || type.endsWith("+json")
  // a JSON 4xx is already an RFC 6749 error answer, unless its error needs renaming
  if (!(form || json) || (!response.ok && json && invalidGrantErrors.length === 0)) return response
  if (Number(response.headers.get("content-length") ?? "0") > ERROR_BODY_LIMIT) return response
  const text = await response
    .clone()
    .text()
    .catch(() => "")
  if (text.length > ERROR_BODY_LIMIT) return response
  const fields = form ? Object.fromEntries(new URLSearchParams(text)) : jsonObject(text)
  if (fields === undefined || typeof fields.error !== "string" || "access_token" in fields) return response
  const error = invalidGrantErrors.includes(fields.error) ? "invalid_grant" : fields.error
  if (!response.ok && json && error === fields.error) return response
  const body: Record<string, unknown> = { error }
  if (typeof fields.error_description === "string") body.error_description = fields.error_description
  if (typeof fields.error_uri === "string") body.error_uri = fields.error_uri
  const headers = new Headers(response.headers)
  headers.set("content-type", "application/json")
  headers.delete("content-length")
  headers.delete("content-encoding")
  await response.body?.cancel().catch(() => undefined)
  return new Response(JSON.stringify(body), {
    status: response.ok ? 400 : response.status,
    statusText: response.ok ? "Bad Request" : response.statusText,
    headers
  })
}

const jsonObject = (text: string): Record<string, unknown> | undefined => {
  try {
    const body: unknown = JSON.parse(text)
    return typeof body === "object" && body !== null && !Array.isArray(body)
      ? (body as Record<string, unknown>)
      : undefined
  } catch {
    return undefined
  }
}

/** `from` matches a whole origin or path prefix: `https://idp.example` never matches `https://idp.example.evil`. */
export const rewriteUrl = (rewrite: ProviderConfig["internalBaseUrl"], url: string): string => {
  if (rewrite === undefined || !url.startsWith(rewrite.from)) return url
  const rest = url.slice(rewrite.from.length)
  if (rewrite.from.endsWith("/") || rest === "" || /^[/?#]/.test(rest)) return rewrite.to + rest
  return url
}

const timeoutSeconds = (provider: ProviderConfig) =>
  Duration.toMillis(Duration.decode(provider.requestTimeout ?? DEFAULT_REQUEST_TIMEOUT)) / 1000

/** Checks a provider's configuration and prepares its client authentication (imports a private JWK). */
const prepare = (provider: ProviderConfig, index: number) =>
  Effect.gen(function* () {
    const field = (name: string) => `providers[${index}].${name}`
    const invalid = (name: string, message: string) =>
      new ConfigInvalid({ field: field(name), message: `provider "${provider.id}": ${message}` })
    if (provider.id.length === 0) return yield* invalid("id", "the id must not be empty")
    if (provider.clientId.length === 0) return yield* invalid("clientId", "the client id must not be empty")
    const insecure = provider.allowInsecureRequests === true
    yield* checkUrl(provider.issuer, insecure, () => invalid("issuer", ""))
    const problem = providerSettingsProblem(provider)
    if (problem !== undefined) {
      return yield* new ConfigInvalid({ field: field(problem.field), message: problem.message })
    }
    for (const [name, value] of Object.entries(provider.endpoints ?? {})) {
      if (value !== undefined) yield* checkUrl(value, insecure, () => invalid(`endpoints.${name}`, ""))
    }
    if (provider.internalBaseUrl !== undefined) {
      yield* checkUrl(provider.internalBaseUrl.from, true, () => invalid("internalBaseUrl.from", ""))
      yield* checkUrl(provider.internalBaseUrl.to, insecure, () => invalid("internalBaseUrl.to", ""))
    }
    const timeout = Effect.try(() => Duration.decode(provider.requestTimeout ?? DEFAULT_REQUEST_TIMEOUT))
    const decoded = yield* Effect.orElseFail(timeout, () => invalid("requestTimeout", "not a duration"))
    if (Duration.toMillis(decoded) <= 0) return yield* invalid("requestTimeout", "must be positive")
    const auth = yield* clientAuth(provider.clientAuthentication, () =>
      invalid("clientAuthentication.privateJwk", "not a private JWK (JSON text with `d`) that can sign")
    )
    return { provider, auth, insecure }
  })

const checkUrl = (value: string, insecure: boolean, fail: () => ConfigInvalid) => {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    const error = fail()
    return Effect.fail(new ConfigInvalid({ field: error.field, message: `${error.message}not a URL` }))
  }
  if (url.protocol === "https:" || (insecure && url.protocol === "http:")) return Effect.void
  const error = fail()
  return Effect.fail(
    new ConfigInvalid({
      field: error.field,
      message:
        url.protocol === "http:"
          ? `${error.message}${value} is http://; use https://, or set allowInsecureRequests: true (local development and tests only)`
          : `${error.message}${value} must be an https:// URL`
    })
  )
}

const clientAuth = (
  authentication: ClientAuthentication,
  invalid: () => ConfigInvalid
): Effect.Effect<client.ClientAuth, ConfigInvalid> => {
  switch (authentication.method) {
    case "client_secret_basic":
      return Effect.succeed(
        authentication.encoding === "plain"
          ? plainBasic(authentication.clientSecret)
          : client.ClientSecretBasic(Redacted.value(authentication.clientSecret))
      )
    case "client_secret_post":
      return Effect.succeed(client.ClientSecretPost(Redacted.value(authentication.clientSecret)))
    case "none":
      return Effect.succeed(client.None())
    case "private_key_jwt":
      return Effect.tryPromise({
        try: async () => {
          const jwk = JSON.parse(Redacted.value(authentication.privateJwk)) as JWK
          if (typeof jwk.d !== "string") throw new TypeError("not a private key")
          const alg = jwk.alg ?? defaultAlg(jwk)
          const key = await importJWK(jwk, alg)
          if (key instanceof Uint8Array || key.type !== "private") throw new TypeError("not a private key")
          return client.PrivateKeyJwt(jwk.kid === undefined ? key : { key, kid: jwk.kid })
        },
        catch: invalid
      })
  }
}

/**
 * `client_secret_basic` without RFC 6749's form-encoding of id and secret: openid-client offers only the
 * encoded form, which providers that do not decode the credentials refuse (F24).
 */
const plainBasic =
  (secret: Redacted.Redacted<string>): client.ClientAuth =>
  (_server, metadata, _body, headers) => {
    const credentials = Buffer.from(`${metadata.client_id}:${Redacted.value(secret)}`, "utf8").toString(
      "base64"
    )
    headers.set("authorization", `Basic ${credentials}`)
  }

const defaultAlg = (jwk: JWK): string | undefined => {
  if (jwk.kty === "RSA") return "RS256"
  if (jwk.kty === "EC") return { "P-256": "ES256", "P-384": "ES384", "P-521": "ES512" }[jwk.crv ?? ""]
  if (jwk.kty === "OKP") return "EdDSA"
  return undefined
}

type Prepared = Effect.Effect.Success<ReturnType<typeof prepare>>

/** Runs one openid-client call with the caller's interruption wired to the fetch, and maps its errors. */
const call = <A>(
  provider: string,
  operation: string,
  run: (signal: AbortSignal) => Promise<A>
): Effect.Effect<A, MappedError> =>
  Effect.tryPromise({ try: run, catch: (cause) => cause }).pipe(
    Effect.catchAll((cause) => mapUpstreamError(provider, operation, cause))
  )

const splitScopes = (scope: unknown): ReadonlyArray<string> | null =>
  typeof scope === "string" ? Scopes.split(scope) : null

const audienceList = (aud: unknown): ReadonlyArray<string> =>
  typeof aud === "string" ? [aud] : Array.isArray(aud) ? aud.filter((a) => typeof a === "string") : []

const toTokenSet = (
  response: client.TokenEndpointResponse & client.TokenEndpointResponseHelpers,
  now: number,
  withIdToken: boolean
): TokenSet => {
  // `refresh_expires_in` (Keycloak, dev-idp) or `refresh_token_expires_in` (GitHub, Microsoft)
  const refreshExpiresIn = response.refresh_expires_in ?? response.refresh_token_expires_in
  const claims = withIdToken ? response.claims() : undefined
  return {
    accessToken: Redacted.make(response.access_token),
    tokenType: response.token_type,
    expiresAt: typeof response.expires_in === "number" ? now + response.expires_in * 1000 : null,
    refreshToken: typeof response.refresh_token === "string" ? Redacted.make(response.refresh_token) : null,
    refreshExpiresAt:
      typeof refreshExpiresIn === "number" && refreshExpiresIn > 0 ? now + refreshExpiresIn * 1000 : null,
    scopes: splitScopes(response.scope),
    issuedTokenType: typeof response.issued_token_type === "string" ? response.issued_token_type : null,
    idTokenClaims: claims === undefined ? null : { ...claims, iss: claims.iss, sub: claims.sub }
  }
}

/** The `refresh_token` of a JSON body that failed validation, when it has one. */
const successorIn = (text: string): Redacted.Redacted<string> | null => {
  try {
    const body: unknown = JSON.parse(text)
    if (typeof body !== "object" || body === null) return null
    const token = (body as { refresh_token?: unknown }).refresh_token
    return typeof token === "string" && token.length > 0 ? Redacted.make(token) : null
  } catch {
    return null
  }
}

const toIntrospection = (response: client.IntrospectionResponse): IntrospectionResult => ({
  active: response.active === true,
  subject: typeof response.sub === "string" ? response.sub : null,
  clientId: typeof response.client_id === "string" ? response.client_id : null,
  scopes: splitScopes(response.scope) ?? [],
  audience: audienceList(response.aud),
  issuer: typeof response.iss === "string" ? response.iss : null,
  expiresAt: typeof response.exp === "number" ? response.exp * 1000 : null,
  ...(typeof response.token_type === "string" ? { tokenType: response.token_type } : {})
})

/** Parameters shared by token requests: `scope` when any, `resource` when asked or configured. */
const tokenParameters = (
  provider: ProviderConfig,
  scopes: ReadonlyArray<string> | undefined,
  resource: string | undefined
): Record<string, string> => {
  const parameters: Record<string, string> = {}
  if (scopes !== undefined && scopes.length > 0) parameters.scope = scopes.join(" ")
  const target = resource ?? provider.resource
  if (target !== undefined) parameters.resource = target
  return parameters
}

/** RFC 8414 / OpenID Connect metadata names of the configurable endpoints. */
const METADATA_NAMES: Record<keyof ProviderEndpoints, keyof client.ServerMetadata> = {
  authorization: "authorization_endpoint",
  token: "token_endpoint",
  revocation: "revocation_endpoint",
  introspection: "introspection_endpoint",
  jwks: "jwks_uri",
  userinfo: "userinfo_endpoint"
}

/** The configured endpoints laid over the metadata (each one given replaces the metadata's). */
const withEndpoints = (provider: ProviderConfig, server: client.ServerMetadata): client.ServerMetadata => {
  const merged: Record<string, unknown> = { ...server }
  for (const [name, value] of Object.entries(provider.endpoints ?? {})) {
    if (value !== undefined) merged[METADATA_NAMES[name as keyof ProviderEndpoints]] = value
  }
  return merged as client.ServerMetadata
}

/**
 * The provider's metadata: OpenID Connect discovery or RFC 8414 metadata, fetched lazily through the
 * rewrite, shared and cached (failures for `cooldown`); or, with discovery "none", the configured endpoints.
 */
const discoverMetadata = (prepared: Prepared, cooldown: Duration.DurationInput) => {
  const { provider, auth, insecure } = prepared
  const discovery = provider.discovery ?? "openid-configuration"
  if (discovery === "none") {
    return Effect.succeed(
      Effect.succeed<client.ServerMetadata>(withEndpoints(provider, { issuer: provider.issuer }))
    )
  }
  const discover = call(provider.id, "discovery", (signal) =>
    client.discovery(new URL(provider.issuer), provider.clientId, undefined, auth, {
      [client.customFetch]: makeFetch(provider.internalBaseUrl, signal),
      timeout: timeoutSeconds(provider),
      algorithm: discovery === "oauth-authorization-server" ? "oauth2" : "oidc",
      execute: insecure ? [client.allowInsecureRequests] : []
    })
  ).pipe(
    Effect.map(
      (configuration): client.ServerMetadata => withEndpoints(provider, configuration.serverMetadata())
    ),
    Effect.mapError((error) =>
      // A discovery request carries no grant: an `invalid_grant` here can only be a broken server.
      error._tag === "InvalidGrant" ? rejectedGrant(provider.id, error) : error
    )
  )
  return cachedWithCooldown(discover, cooldown)
}

const makeProviderClient = (
  prepared: Prepared,
  metadata: Effect.Effect<client.ServerMetadata, UpstreamUnavailable | UpstreamRejected>
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

  const unsupported = (operation: string, error: string) =>
    new UpstreamRejected({
      provider: provider.id,
      error,
      message: `provider "${provider.id}" has no ${operation} endpoint in its discovery document`
    })

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
      Effect.gen(function* () {
        const server = yield* metadata
        const endpoint = server.userinfo_endpoint
        if (endpoint === undefined) return yield* unsupported("userinfo", "userinfo_not_supported")
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
      }).pipe(Effect.catchTag("InvalidGrant", (error) => Effect.fail(rejectedGrant(provider.id, error)))),
    revoke: (request) =>
      Effect.gen(function* () {
        const server = yield* metadata
        if (server.revocation_endpoint === undefined) {
          return yield* unsupported("revocation", "revocation_not_supported")
        }
        yield* call(provider.id, "revocation", (signal) =>
          client.tokenRevocation(configuration(server, signal), Redacted.value(request.token), {
            token_type_hint: request.tokenTypeHint
          })
        )
      }).pipe(Effect.catchTag("InvalidGrant", (error) => Effect.fail(rejectedGrant(provider.id, error)))),
    introspect: (token) =>
      Effect.gen(function* () {
        const server = yield* metadata
        if (server.introspection_endpoint === undefined) {
          return yield* unsupported("introspection", "introspection_not_supported")
        }
        const response = yield* call(provider.id, "introspection", (signal) =>
          client.tokenIntrospection(configuration(server, signal), Redacted.value(token))
        )
        return toIntrospection(response)
      }).pipe(Effect.catchTag("InvalidGrant", (error) => Effect.fail(rejectedGrant(provider.id, error))))
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

/** `invalid_grant` where no grant is involved (revocation, introspection) is a rejection like any other. */
const rejectedGrant = (provider: string, error: { readonly errorDescription: string | undefined }) =>
  new UpstreamRejected({
    provider,
    error: "invalid_grant",
    errorDescription: error.errorDescription,
    message: `provider "${provider}" answered invalid_grant`
  })

export const make = (
  providers: ReadonlyArray<ProviderConfig>,
  options: MakeOptions = {}
): Effect.Effect<AuthorizationServersService, ConfigInvalid> =>
  Effect.gen(function* () {
    const seen = new Set<string>()
    for (const [index, provider] of providers.entries()) {
      if (seen.has(provider.id)) {
        return yield* new ConfigInvalid({
          field: `providers[${index}].id`,
          message: `provider id "${provider.id}" is configured twice`
        })
      }
      seen.add(provider.id)
    }
    const prepared = yield* Effect.forEach(providers, prepare)
    const cooldown = options.discoveryCooldown ?? DEFAULT_DISCOVERY_COOLDOWN
    const clients = new Map<string, ProviderClient>()
    for (const entry of prepared) {
      clients.set(entry.provider.id, makeProviderClient(entry, yield* discoverMetadata(entry, cooldown)))
    }
    return {
      providers,
      get: (id: string) => {
        const found = clients.get(id)
        return found === undefined
          ? Effect.fail(new ProviderNotFound({ provider: id, message: `no provider "${id}" is configured` }))
          : Effect.succeed(found)
      }
    }
  })

export const checkProviderTokenExchange = (
  found: ProviderClient,
  index: number
): Effect.Effect<string | null, ConfigInvalid> =>
  Effect.gen(function* () {
    const provider = found.config
    if (provider.tokenExchange === undefined) return null
    const support = yield* Effect.either(found.tokenExchangeSupport)
    if (Either.isLeft(support)) {
      return `provider "${provider.id}": its metadata could not be read (${support.left.message}); whether it supports RFC 8693 token exchange is known at the first exchange`
    }
    if (support.right === "not_listed") {
      return yield* new ConfigInvalid({
        field: `providers[${index}].tokenExchange`,
        message: `provider "${provider.id}" is configured for token exchange, but its metadata's grant_types_supported does not list ${TOKEN_EXCHANGE_GRANT}: it does not support RFC 8693 token exchange; remove tokenExchange, or use a provider that supports it`
      })
    }
    if (support.right === "unknown") {
      return `provider "${provider.id}" is configured for token exchange, but its metadata has no grant_types_supported: whether it supports RFC 8693 token exchange is known at the first exchange`
    }
    return null
  })

export const checkTokenExchange = (
  servers: AuthorizationServersService
): Effect.Effect<ReadonlyArray<string>, ConfigInvalid> =>
  Effect.gen(function* () {
    const configured = [...servers.providers.entries()].filter(([, p]) => p.tokenExchange !== undefined)
    // every provider at once: a slow one delays the start by one request timeout at most
    const outcomes = yield* Effect.forEach(
      configured,
      ([index, provider]) =>
        Effect.flatMap(Effect.orDie(servers.get(provider.id)), (found) =>
          Effect.either(checkProviderTokenExchange(found, index))
        ),
      { concurrency: "unbounded" }
    )
    const warnings: Array<string> = []
    for (const outcome of outcomes) {
      if (Either.isLeft(outcome)) return yield* Effect.fail(outcome.left)
      if (outcome.right !== null) warnings.push(outcome.right)
    }
    return warnings
  })

/**
 * An RFC 7662 client of one introspection endpoint known without discovery (the TokenVerifier's
 * `introspection.endpoint` option).
 */
export const makeIntrospectionClient = (options: {
  readonly issuer: string
  readonly endpoint: string
  readonly clientId: string
  readonly clientAuthentication: ClientAuthentication
  readonly allowInsecureRequests?: boolean | undefined
  readonly requestTimeout?: Duration.DurationInput | undefined
  readonly field: string
}): Effect.Effect<Pick<ProviderClient, "introspect">, ConfigInvalid> =>
  Effect.gen(function* () {
    const provider: ProviderConfig = {
      id: `introspection ${options.issuer}`,
      issuer: options.issuer,
      clientId: options.clientId,
      clientAuthentication: options.clientAuthentication,
      redirectUri: options.endpoint,
      defaultScopes: [],
      allowInsecureRequests: options.allowInsecureRequests,
      requestTimeout: options.requestTimeout
    }
    const prepared = yield* prepare(provider, 0).pipe(
      Effect.mapError(
        (error) =>
          new ConfigInvalid({
            field: `${options.field}.${error.field.replace(/^providers\[0\]\./, "")}`,
            message: error.message
          })
      )
    )
    yield* checkUrl(
      options.endpoint,
      prepared.insecure,
      () => new ConfigInvalid({ field: `${options.field}.endpoint`, message: "introspection endpoint: " })
    )
    const server: client.ServerMetadata = { issuer: options.issuer, introspection_endpoint: options.endpoint }
    return makeProviderClient(prepared, Effect.succeed(server))
  })
