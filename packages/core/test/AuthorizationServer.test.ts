import { createServer, type IncomingMessage, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { type DevIdp, startDevIdp } from "@token-broker/dev-idp"
import { Context, Duration, Effect, Exit, Fiber, Layer, Redacted, Scope, TestClock } from "effect"
import { decodeJwt } from "jose"
import * as oauth from "openid-client"
import { vi } from "vitest"
import * as AuthorizationServer from "../src/AuthorizationServer.js"
import { parseRetryAfter } from "../src/internal/upstreamError.js"
import type { ClientAuthentication, ProviderConfig } from "../src/Provider.js"
import { closedPort } from "./support/closedPort.js"

const SCOPES = ["notes:read", "notes:write", "offline_access", "openid"]
const ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"

let idp: DevIdp

beforeAll(async () => {
  idp = await startDevIdp()
})
afterAll(() => idp.close())

const alice = () => {
  const user = idp.users.find((u) => u.username === "alice")
  if (user === undefined) throw new Error("dev-idp has no alice")
  return user
}

const authenticationOf = (clientId: string): ClientAuthentication => {
  const client = idp.client(clientId)
  switch (client.tokenEndpointAuthMethod) {
    case "client_secret_basic":
      return { method: "client_secret_basic", clientSecret: Redacted.make(client.clientSecret ?? "") }
    case "client_secret_post":
      return { method: "client_secret_post", clientSecret: Redacted.make(client.clientSecret ?? "") }
    case "private_key_jwt":
      return { method: "private_key_jwt", privateJwk: Redacted.make(JSON.stringify(client.privateJwk)) }
    default:
      return { method: "none" }
  }
}

const providerFor = (clientId: string, overrides: Partial<ProviderConfig> = {}): ProviderConfig => ({
  id: clientId,
  issuer: idp.issuer,
  clientId,
  clientAuthentication: authenticationOf(clientId),
  redirectUri: idp.client(clientId).redirectUris[0] ?? "",
  defaultScopes: SCOPES,
  resource: idp.notesAudience,
  allowInsecureRequests: true,
  ...overrides
})

const clientOf = (provider: ProviderConfig, options?: AuthorizationServer.MakeOptions) =>
  AuthorizationServer.make([provider], options).pipe(Effect.flatMap((servers) => servers.get(provider.id)))

const login = (clientId: string, resource: string = idp.notesAudience) =>
  Effect.promise(() =>
    idp.login({ clientId, username: alice().username, password: alice().password, scopes: SCOPES, resource })
  )

const refreshTokenOf = (tokens: { refresh_token?: string }) => Redacted.make(tokens.refresh_token ?? "")

/** Fails the test unless the effect fails; returns the error. */
const failure = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.flip(effect).pipe(Effect.catchAllDefect((defect) => Effect.die(defect)))

/**
 * A loopback HTTP forwarder in front of dev-idp: records every request, and can answer some itself
 * (a failure, a hang) or rewrite the discovery document.
 */
interface Forwarder {
  readonly url: string
  readonly requests: Array<string>
  /** Requests whose connection the client closed before an answer. */
  readonly aborted: Array<string>
  intercept:
    | ((req: IncomingMessage) => { status: number; body: string; type?: string } | "hang" | undefined)
    | null
  transformDiscovery: ((document: Record<string, unknown>) => Record<string, unknown>) | null
  close(): Promise<void>
}

const startForwarder = async (target: string): Promise<Forwarder> => {
  const hanging = new Set<IncomingMessage>()
  const forwarder: Forwarder = {
    url: "",
    requests: [],
    aborted: [],
    intercept: null,
    transformDiscovery: null,
    close: async () => {
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
    }
  }
  const server: Server = createServer(async (req, res) => {
    const line = `${req.method} ${req.url}`
    forwarder.requests.push(line)
    const chunks: Buffer[] = []
    for await (const chunk of req) chunks.push(chunk as Buffer)
    const decision = forwarder.intercept?.(req)
    if (decision === "hang") {
      hanging.add(req)
      res.on("close", () => {
        if (!res.writableEnded) forwarder.aborted.push(line)
      })
      return
    }
    if (decision !== undefined) {
      res.writeHead(decision.status, { "content-type": decision.type ?? "text/plain" }).end(decision.body)
      return
    }
    const headers = Object.fromEntries(
      Object.entries(req.headers).filter(
        (entry): entry is [string, string] =>
          typeof entry[1] === "string" && !["host", "connection", "content-length"].includes(entry[0])
      )
    )
    const upstream = await fetch(`${target}${req.url}`, {
      method: req.method ?? "GET",
      headers,
      redirect: "manual",
      ...(req.method === "GET" || req.method === "HEAD" ? {} : { body: Buffer.concat(chunks) })
    })
    let body = Buffer.from(await upstream.arrayBuffer())
    if (req.url?.startsWith("/.well-known/openid-configuration") && forwarder.transformDiscovery !== null) {
      body = Buffer.from(JSON.stringify(forwarder.transformDiscovery(JSON.parse(body.toString("utf8")))))
    }
    const out: Record<string, string> = {}
    upstream.headers.forEach((value, key) => {
      if (!["content-length", "content-encoding", "transfer-encoding", "connection"].includes(key))
        out[key] = value
    })
    res.writeHead(upstream.status, out).end(body)
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  return Object.assign(forwarder, { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` })
}

/** The `token-broker` client's provider, reached through `forwarder` (its issuer stays dev-idp's). */
const forwardedProvider = (forwarder: Forwarder) =>
  providerFor("token-broker", { internalBaseUrl: { from: idp.issuer, to: forwarder.url } })

const withForwarder = <A, E>(use: (forwarder: Forwarder) => Effect.Effect<A, E>) =>
  Effect.acquireUseRelease(
    Effect.promise(() => startForwarder(idp.issuer)),
    use,
    (forwarder) => Effect.promise(() => forwarder.close())
  )

describe("AuthorizationServers: configuration", () => {
  const refusals: ReadonlyArray<{
    readonly name: string
    /** A thunk: the providers are built from the running dev-idp. */
    readonly providers: () => ReadonlyArray<ProviderConfig>
    readonly field: string
    readonly message?: string
  }> = [
    {
      name: "an http:// issuer without allowInsecureRequests",
      providers: () => [providerFor("token-broker", { allowInsecureRequests: undefined })],
      field: "providers[0].issuer",
      message: "allowInsecureRequests"
    },
    {
      name: "an http:// internal base URL without allowInsecureRequests",
      providers: () => [
        providerFor("token-broker", {
          issuer: "https://idp.example.test",
          allowInsecureRequests: false,
          internalBaseUrl: { from: "https://idp.example.test", to: "http://10.0.0.1:8080" }
        })
      ],
      field: "providers[0].internalBaseUrl.to"
    },
    {
      name: "a private_key_jwt client whose key is not a private JWK",
      providers: () => [
        providerFor("token-broker-jwt", {
          clientAuthentication: { method: "private_key_jwt", privateJwk: Redacted.make('{"kty":"EC"}') }
        })
      ],
      field: "providers[0].clientAuthentication.privateJwk"
    },
    {
      name: "duplicate ids",
      providers: () => [providerFor("token-broker"), providerFor("token-broker")],
      field: "providers[1].id"
    }
  ]

  for (const { name, providers, field, message } of refusals)
    it.effect(`refuses ${name}, naming the field`, () =>
      Effect.gen(function* () {
        const error = yield* failure(AuthorizationServer.make(providers()))
        expect(error._tag).toBe("ConfigInvalid")
        expect(error.code).toBe("config_invalid")
        expect(error.field).toBe(field)
        if (message !== undefined) expect(error.message).toContain(message)
      })
    )

  it.effect("answers ProviderNotFound for an unknown provider", () =>
    Effect.gen(function* () {
      const servers = yield* AuthorizationServer.make([providerFor("token-broker")])
      const error = yield* failure(servers.get("nope"))
      expect(error._tag).toBe("ProviderNotFound")
      expect(error.provider).toBe("nope")
    })
  )
})

describe("AuthorizationServers: grants against dev-idp", () => {
  for (const clientId of ["token-broker", "token-broker-post", "token-broker-jwt"]) {
    it.live(`refreshes with rotation (${clientId})`, () =>
      Effect.gen(function* () {
        const client = yield* clientOf(providerFor(clientId))
        const tokens = yield* login(clientId)
        const before = Date.now()
        const refreshed = yield* client.refresh({ refreshToken: refreshTokenOf(tokens) })
        expect(refreshed.refreshToken).not.toBeNull()
        expect(Redacted.value(refreshed.refreshToken ?? Redacted.make(""))).not.toBe(tokens.refresh_token)
        expect(refreshed.tokenType).toBe("bearer")
        expect(refreshed.expiresAt).toBeGreaterThanOrEqual(before + 299_000)
        expect(refreshed.expiresAt).toBeLessThanOrEqual(Date.now() + 300_000)
        expect(refreshed.refreshExpiresAt).toBeGreaterThan(before + 29 * 24 * 3600 * 1000)
        // the access token's scope: what the resource understands (openid/offline_access stay with the grant)
        expect(refreshed.scopes).toEqual(["notes:read", "notes:write"])
        expect(refreshed.idTokenClaims).toBeNull()
        expect(decodeJwt(Redacted.value(refreshed.accessToken)).aud).toBe(idp.notesAudience)
        expect(idp.counters.count({ grantType: "refresh_token", clientId })).toBeGreaterThanOrEqual(1)
        // the rotated-away token is dead (and presenting it makes dev-idp revoke the grant)
        const reused = yield* failure(client.refresh({ refreshToken: refreshTokenOf(tokens) }))
        expect(reused._tag).toBe("InvalidGrant")
      })
    )
  }

  it.live("downscopes a refresh: the access token carries only the asked scopes", () =>
    Effect.gen(function* () {
      const client = yield* clientOf(providerFor("token-broker"))
      const tokens = yield* login("token-broker")
      const refreshed = yield* client.refresh({
        refreshToken: refreshTokenOf(tokens),
        scopes: ["notes:read"]
      })
      expect(refreshed.scopes).toEqual(["notes:read"])
      expect(decodeJwt(Redacted.value(refreshed.accessToken)).scope).toBe("notes:read")
      // the grant keeps its scope: the next refresh without scopes gets everything again
      const again = yield* client.refresh({ refreshToken: refreshed.refreshToken ?? Redacted.make("") })
      expect(again.scopes).toContain("notes:write")
    })
  )

  it.live("maps invalid_scope to UpstreamRejected with error, description and status", () =>
    Effect.gen(function* () {
      const client = yield* clientOf(providerFor("token-broker"))
      const tokens = yield* login("token-broker")
      const error = yield* failure(
        client.refresh({ refreshToken: refreshTokenOf(tokens), scopes: ["admin"] })
      )
      expect(error._tag).toBe("UpstreamRejected")
      if (error._tag !== "UpstreamRejected") return
      expect(error.error).toBe("invalid_scope")
      expect(error.status).toBe(400)
      expect(error.message).not.toContain(tokens.refresh_token)
    })
  )

  it.live("maps a wrong client secret to UpstreamRejected invalid_client (401)", () =>
    Effect.gen(function* () {
      const tokens = yield* login("token-broker")
      const client = yield* clientOf(
        providerFor("token-broker", {
          clientAuthentication: { method: "client_secret_basic", clientSecret: Redacted.make("wrong-secret") }
        })
      )
      const error = yield* failure(client.refresh({ refreshToken: refreshTokenOf(tokens) }))
      expect(error._tag).toBe("UpstreamRejected")
      if (error._tag !== "UpstreamRejected") return
      expect(error.error).toBe("invalid_client")
      expect(error.status).toBe(401)
      expect(error.message).not.toContain("wrong-secret")
    })
  )

  it.live("exchanges a user's access token (RFC 8693), with and without an actor", () =>
    Effect.gen(function* () {
      const client = yield* clientOf(providerFor("token-broker"))
      const tokens = yield* login("token-broker")
      const exchanged = yield* client.exchange({
        subjectToken: Redacted.make(tokens.access_token),
        scopes: ["notes:read"],
        audience: idp.notesAudience
      })
      expect(exchanged.issuedTokenType).toBe(ACCESS_TOKEN_TYPE)
      expect(exchanged.scopes).toEqual(["notes:read"])
      expect(exchanged.refreshToken).toBeNull()
      const plain = decodeJwt(Redacted.value(exchanged.accessToken))
      expect(plain.sub).toBe(alice().sub)
      expect(plain.act).toBeUndefined()

      const actor = yield* client.clientCredentials({ scopes: ["notes:read"] })
      const delegated = yield* client.exchange({
        subjectToken: Redacted.make(tokens.access_token),
        scopes: ["notes:read"],
        actorToken: actor.accessToken
      })
      const claims = decodeJwt(Redacted.value(delegated.accessToken))
      expect(claims.sub).toBe(alice().sub)
      expect(claims.act).toEqual({ sub: "token-broker" })
      expect(claims.aud).toBe(idp.notesAudience)
    })
  )

  it.live("maps an exchange of an invalid subject token to InvalidGrant", () =>
    Effect.gen(function* () {
      const client = yield* clientOf(providerFor("token-broker"))
      const error = yield* failure(
        client.exchange({ subjectToken: Redacted.make("not-a-token"), scopes: ["notes:read"] })
      )
      expect(error._tag).toBe("InvalidGrant")
    })
  )

  it.live("gets a client_credentials token for the provider's resource", () =>
    Effect.gen(function* () {
      const client = yield* clientOf(providerFor("token-broker-jwt"))
      const tokens = yield* client.clientCredentials({ scopes: ["notes:read"] })
      const claims = decodeJwt(Redacted.value(tokens.accessToken))
      expect(claims.aud).toBe(idp.notesAudience)
      expect(claims.client_id).toBe("token-broker-jwt")
      expect(tokens.scopes).toEqual(["notes:read"])
      expect(tokens.refreshToken).toBeNull()
    })
  )
})

describe("AuthorizationServers: authorization code flow against dev-idp", () => {
  const start = (clientId: string) =>
    Effect.gen(function* () {
      const client = yield* clientOf(providerFor(clientId))
      const verifier = oauth.randomPKCECodeVerifier()
      const state = oauth.randomState()
      const nonce = oauth.randomNonce()
      const url = yield* client.authorizationUrl({
        state,
        nonce,
        codeChallenge: yield* Effect.promise(() => oauth.calculatePKCECodeChallenge(verifier)),
        scopes: SCOPES,
        redirectUri: client.config.redirectUri,
        prompt: "consent"
      })
      return { client, verifier, state, nonce, url }
    })

  it.live("builds the authorization URL with PKCE S256, state, nonce, scope, resource and prompt", () =>
    Effect.gen(function* () {
      const { url, state, nonce } = yield* start("token-broker")
      expect(`${url.origin}${url.pathname}`).toBe(`${idp.issuer}/auth`)
      const params = url.searchParams
      expect(params.get("response_type")).toBe("code")
      expect(params.get("client_id")).toBe("token-broker")
      expect(params.get("code_challenge_method")).toBe("S256")
      expect(params.get("code_challenge")).toMatch(/^[A-Za-z0-9_-]{43}$/)
      expect(params.get("state")).toBe(state)
      expect(params.get("nonce")).toBe(nonce)
      expect(params.get("scope")).toBe(SCOPES.join(" "))
      expect(params.get("redirect_uri")).toBe(idp.client("token-broker").redirectUris[0])
      expect(params.get("resource")).toBe(idp.notesAudience)
      expect(params.get("prompt")).toBe("consent")
    })
  )

  type CodeExchange = Parameters<AuthorizationServer.ProviderClient["exchangeCode"]>[0]

  /**
   * Alice answers the consent of `start(clientId)` (allowing it unless `allow` is false), then the
   * client exchanges the code with the request a correct caller makes, `change` laid over it (another
   * state, nonce or PKCE verifier). Returns the exchange's outcome and the code exchanges dev-idp had
   * answered before it.
   */
  const consentAndExchange = (clientId: string, change: Partial<CodeExchange> = {}, allow = true) =>
    Effect.gen(function* () {
      const { client, verifier, state, nonce, url } = yield* start(clientId)
      const callbackUrl = yield* Effect.promise(() =>
        idp.driveAuthorization(url, {
          username: alice().username,
          password: alice().password,
          ...(allow ? {} : { consent: false })
        })
      )
      const before = idp.counters.count({ grantType: "authorization_code" })
      const outcome = client.exchangeCode({
        callbackUrl,
        expectedState: state,
        codeVerifier: Redacted.make(verifier),
        nonce,
        redirectUri: client.config.redirectUri,
        ...change
      })
      return { outcome, nonce, before }
    })

  it.live("exchanges the code: ID token validated (nonce), refresh token issued", () =>
    Effect.gen(function* () {
      const { outcome, nonce } = yield* consentAndExchange("token-broker-post")
      const tokens = yield* outcome
      expect(tokens.idTokenClaims?.sub).toBe(alice().sub)
      expect(tokens.idTokenClaims?.iss).toBe(idp.issuer)
      expect(tokens.idTokenClaims?.nonce).toBe(nonce)
      expect(tokens.refreshToken).not.toBeNull()
      expect(tokens.scopes).toEqual(["notes:read", "notes:write"])
    })
  )

  it.live("refuses a callback whose state is not the expected one, before any token request", () =>
    Effect.gen(function* () {
      const { outcome, before } = yield* consentAndExchange("token-broker", {
        expectedState: "another-state"
      })
      const error = yield* failure(outcome)
      expect(error._tag).toBe("UpstreamRejected")
      if (error._tag === "UpstreamRejected") expect(error.error).toBe("state_mismatch")
      expect(idp.counters.count({ grantType: "authorization_code" })).toBe(before)
    })
  )

  it.live("refuses an ID token whose nonce is not the expected one", () =>
    Effect.gen(function* () {
      const { outcome } = yield* consentAndExchange("token-broker", { nonce: "another-nonce" })
      const error = yield* failure(outcome)
      expect(error._tag).toBe("UpstreamRejected")
      if (error._tag === "UpstreamRejected") expect(error.error).toBe("invalid_response")
    })
  )

  it.live("maps a wrong PKCE verifier to InvalidGrant", () =>
    Effect.gen(function* () {
      const { outcome } = yield* consentAndExchange("token-broker", {
        codeVerifier: Redacted.make(oauth.randomPKCECodeVerifier())
      })
      const error = yield* failure(outcome)
      expect(error._tag).toBe("InvalidGrant")
    })
  )

  it.live("maps a denied consent (error in the callback) to UpstreamRejected access_denied", () =>
    Effect.gen(function* () {
      const { outcome } = yield* consentAndExchange("token-broker", {}, false)
      const error = yield* failure(outcome)
      expect(error._tag).toBe("UpstreamRejected")
      if (error._tag === "UpstreamRejected") expect(error.error).toBe("access_denied")
    })
  )
})

describe("AuthorizationServers: client_secret_basic encodings", () => {
  // the client id "token-broker" has a `-`: RFC 6749 form-encoding sends it as `token%2Dbroker`
  for (const [encoding, expectedId] of [
    [undefined, "token%2Dbroker"],
    ["form", "token%2Dbroker"],
    ["plain", "token-broker"]
  ] as const) {
    it.live(
      `encoding ${encoding ?? "(default)"}: the Basic credentials carry ${expectedId}; dev-idp accepts them`,
      () =>
        withForwarder((forwarder) =>
          Effect.gen(function* () {
            const secret = idp.client("token-broker").clientSecret ?? ""
            const seen: Array<string> = []
            forwarder.intercept = (req) => {
              const header = req.headers.authorization
              if (typeof header === "string" && header.startsWith("Basic ")) {
                seen.push(Buffer.from(header.slice(6), "base64").toString("utf8"))
              }
              return undefined
            }
            const client = yield* clientOf(
              providerFor("token-broker", {
                clientAuthentication: {
                  method: "client_secret_basic",
                  clientSecret: Redacted.make(secret),
                  ...(encoding === undefined ? {} : { encoding })
                },
                internalBaseUrl: { from: idp.issuer, to: forwarder.url }
              })
            )
            const tokens = yield* login("token-broker")
            idp.revocations.clear()
            yield* client.revoke({ token: refreshTokenOf(tokens), tokenTypeHint: "refresh_token" })
            expect(idp.revocations.list()).toEqual([
              expect.objectContaining({ clientId: "token-broker", authMethod: "client_secret_basic" })
            ])
            expect(seen).toHaveLength(1)
            expect(seen[0]?.startsWith(`${expectedId}:`)).toBe(true)
            if (encoding === "plain") expect(seen[0]).toBe(`token-broker:${secret}`)
          })
        )
    )
  }
})

describe("AuthorizationServers: revocation and introspection against dev-idp", () => {
  it.live("revokes a refresh token with client authentication (RFC 7009)", () =>
    Effect.gen(function* () {
      const client = yield* clientOf(providerFor("token-broker-jwt"))
      const tokens = yield* login("token-broker-jwt")
      idp.revocations.clear()
      yield* client.revoke({ token: refreshTokenOf(tokens), tokenTypeHint: "refresh_token" })
      expect(idp.revocations.list()).toEqual([
        expect.objectContaining({
          clientId: "token-broker-jwt",
          authMethod: "private_key_jwt",
          tokenTypeHint: "refresh_token"
        })
      ])
      const error = yield* failure(client.refresh({ refreshToken: refreshTokenOf(tokens) }))
      expect(error._tag).toBe("InvalidGrant")
    })
  )

  it.live("fails revocation_not_supported when discovery names no revocation endpoint", () =>
    withForwarder((forwarder) =>
      Effect.gen(function* () {
        forwarder.transformDiscovery = ({ revocation_endpoint: _, ...document }) => document
        const client = yield* clientOf(forwardedProvider(forwarder))
        const error = yield* failure(
          client.revoke({ token: Redacted.make("x"), tokenTypeHint: "refresh_token" })
        )
        expect(error._tag).toBe("UpstreamRejected")
        if (error._tag === "UpstreamRejected") expect(error.error).toBe("revocation_not_supported")
      })
    )
  )

  it.live("introspects an opaque access token: active, then inactive once revoked (RFC 7662)", () =>
    Effect.gen(function* () {
      const client = yield* clientOf(providerFor("token-broker"))
      const tokens = yield* login("token-broker", idp.opaqueAudience)
      expect(tokens.access_token.split(".")).toHaveLength(1)
      const active = yield* client.introspect(Redacted.make(tokens.access_token))
      expect(active.active).toBe(true)
      expect(active.subject).toBe(alice().sub)
      expect(active.clientId).toBe("token-broker")
      expect(active.audience).toContain(idp.opaqueAudience)
      expect(active.issuer).toBe(idp.issuer)
      expect(active.expiresAt).toBeGreaterThan(Date.now())
      yield* client.revoke({ token: Redacted.make(tokens.access_token), tokenTypeHint: "access_token" })
      const revoked = yield* client.introspect(Redacted.make(tokens.access_token))
      expect(revoked.active).toBe(false)
    })
  )
})

describe("AuthorizationServers: discovery and the public-to-internal rewrite", () => {
  it.live("sends every request to the internal base URL; the issuer stays the public one", () =>
    withForwarder((forwarder) =>
      Effect.gen(function* () {
        const client = yield* clientOf(forwardedProvider(forwarder))
        const tokens = yield* login("token-broker")
        const refreshed = yield* client.refresh({ refreshToken: refreshTokenOf(tokens) })
        expect(decodeJwt(Redacted.value(refreshed.accessToken)).iss).toBe(idp.issuer)
        expect(forwarder.requests).toEqual(["GET /.well-known/openid-configuration", "POST /token"])
        // the authorization URL is for the browser: it keeps the public origin
        const url = yield* client.authorizationUrl({
          state: "s",
          nonce: "n",
          codeChallenge: "c".repeat(43),
          scopes: ["openid"],
          redirectUri: client.config.redirectUri
        })
        expect(url.origin).toBe(new URL(idp.issuer).origin)
      })
    )
  )

  it.live("shares one discovery among concurrent first calls", () =>
    withForwarder((forwarder) =>
      Effect.gen(function* () {
        const client = yield* clientOf(forwardedProvider(forwarder))
        const urls = yield* Effect.forEach(
          Array.from({ length: 8 }, (_, i) => i),
          (i) =>
            client.authorizationUrl({
              state: `s${i}`,
              nonce: "n",
              codeChallenge: "c".repeat(43),
              scopes: ["openid"],
              redirectUri: client.config.redirectUri
            }),
          { concurrency: "unbounded" }
        )
        expect(urls).toHaveLength(8)
        expect(forwarder.requests).toEqual(["GET /.well-known/openid-configuration"])
      })
    )
  )

  it.live("maps a failed discovery, keeps the failure for the cooldown, then retries", () =>
    withForwarder((forwarder) =>
      Effect.gen(function* () {
        forwarder.intercept = () => ({ status: 502, body: "<html>Bad Gateway</html>", type: "text/html" })
        const client = yield* clientOf(
          forwardedProvider(forwarder),
          // wide enough that the cached answer below is still within it on a loaded machine
          { discoveryCooldown: "3 seconds" }
        )
        const url = () =>
          client.authorizationUrl({
            state: "s",
            nonce: "n",
            codeChallenge: "c".repeat(43),
            scopes: ["openid"],
            redirectUri: client.config.redirectUri
          })
        const first = yield* failure(url())
        expect(first._tag).toBe("UpstreamUnavailable")
        if (first._tag === "UpstreamUnavailable") {
          expect(first.reason).toBe("server_error")
          expect(first.status).toBe(502)
        }
        forwarder.intercept = null
        const cached = yield* failure(url())
        expect(cached._tag).toBe("UpstreamUnavailable")
        expect(forwarder.requests).toHaveLength(1)
        yield* Effect.sleep("3500 millis")
        yield* url()
        expect(forwarder.requests).toHaveLength(2)
      })
    )
  )

  it.live("maps a malformed discovery document to UpstreamRejected", () =>
    withForwarder((forwarder) =>
      Effect.gen(function* () {
        forwarder.intercept = () => ({ status: 200, body: "[1,2,3]", type: "application/json" })
        const client = yield* clientOf(forwardedProvider(forwarder))
        const error = yield* failure(client.clientCredentials({ scopes: ["notes:read"] }))
        expect(error._tag).toBe("UpstreamRejected")
        if (error._tag === "UpstreamRejected") expect(error.error).toBe("invalid_response")
      })
    )
  )
})

describe("AuthorizationServers: transient failures", () => {
  const injected = (
    fault: Parameters<DevIdp["faults"]["inject"]>[0],
    overrides: Partial<ProviderConfig> = {}
  ) =>
    Effect.gen(function* () {
      const client = yield* clientOf(providerFor("token-broker", overrides))
      const tokens = yield* login("token-broker")
      yield* client.authorizationUrl({
        state: "s",
        nonce: "n",
        codeChallenge: "c".repeat(43),
        scopes: ["openid"],
        redirectUri: client.config.redirectUri
      })
      idp.faults.inject({ ...fault, grantType: "refresh_token" })
      const error = yield* failure(client.refresh({ refreshToken: refreshTokenOf(tokens) }))
      idp.faults.clear()
      return { error, client, tokens }
    })

  it.live("maps a 500 to UpstreamUnavailable server_error with the status (retryable)", () =>
    Effect.gen(function* () {
      const { error, client, tokens } = yield* injected({ kind: "status", status: 500, count: 1 })
      expect(error._tag).toBe("UpstreamUnavailable")
      if (error._tag !== "UpstreamUnavailable") return
      expect(error.reason).toBe("server_error")
      expect(error.status).toBe(500)
      expect(error.retryable).toBe(true)
      // the refresh token was not consumed: the next attempt works
      yield* client.refresh({ refreshToken: refreshTokenOf(tokens) })
    })
  )

  it.live("maps a non-JSON 5xx body to server_error too", () =>
    withForwarder((forwarder) =>
      Effect.gen(function* () {
        const client = yield* clientOf(forwardedProvider(forwarder))
        const tokens = yield* login("token-broker")
        forwarder.intercept = (req) =>
          req.url === "/token" ? { status: 503, body: "Service Unavailable", type: "text/plain" } : undefined
        const error = yield* failure(client.refresh({ refreshToken: refreshTokenOf(tokens) }))
        expect(error._tag).toBe("UpstreamUnavailable")
        if (error._tag !== "UpstreamUnavailable") return
        expect(error.reason).toBe("server_error")
        expect(error.status).toBe(503)
      })
    )
  )

  it.live("maps a 429 to rate_limited with Retry-After", () =>
    Effect.gen(function* () {
      const { error } = yield* injected({ kind: "rate_limit", retryAfterSeconds: 7, count: 1 })
      expect(error._tag).toBe("UpstreamUnavailable")
      if (error._tag !== "UpstreamUnavailable") return
      expect(error.reason).toBe("rate_limited")
      expect(error.status).toBe(429)
      expect(error.retryAfter).toEqual(Duration.seconds(7))
    })
  )

  it("parses Retry-After as delay-seconds or as an HTTP-date", () => {
    const now = Date.parse("Wed, 21 Oct 2015 07:28:00 GMT")
    expect(parseRetryAfter("120", now)).toEqual(Duration.seconds(120))
    expect(parseRetryAfter("Wed, 21 Oct 2015 07:28:30 GMT", now)).toEqual(Duration.millis(30_000))
    expect(parseRetryAfter("Wed, 21 Oct 2015 07:27:00 GMT", now)).toEqual(Duration.millis(0))
    expect(parseRetryAfter("soon", now)).toBeUndefined()
    expect(parseRetryAfter(null, now)).toBeUndefined()
  })

  it.live("maps an injected invalid_grant to InvalidGrant (not retryable)", () =>
    Effect.gen(function* () {
      const { error } = yield* injected({ kind: "invalid_grant", count: 1 })
      expect(error._tag).toBe("InvalidGrant")
      if (error._tag === "InvalidGrant") expect(error.provider).toBe("token-broker")
    })
  )

  it.live("ends a hanging request after requestTimeout with reason timeout", () =>
    Effect.gen(function* () {
      // the request hangs forever: only requestTimeout can end it (else the test's own timeout fails it)
      const { error } = yield* injected({ kind: "hang", count: 1 }, { requestTimeout: "300 millis" })
      expect(error._tag).toBe("UpstreamUnavailable")
      if (error._tag === "UpstreamUnavailable") expect(error.reason).toBe("timeout")
    })
  )

  it.live("aborts the HTTP request when the calling fiber is interrupted", () =>
    withForwarder((forwarder) =>
      Effect.gen(function* () {
        const client = yield* clientOf(forwardedProvider(forwarder))
        const tokens = yield* login("token-broker")
        forwarder.intercept = (req) => (req.url === "/token" ? "hang" : undefined)
        const exit = yield* client
          .refresh({ refreshToken: refreshTokenOf(tokens) })
          .pipe(Effect.timeout("300 millis"), Effect.exit)
        expect(Exit.isFailure(exit)).toBe(true)
        // the forwarder sees the connection close: wait for that event, not for a guessed delay
        yield* Effect.promise(() =>
          vi.waitFor(() => expect(forwarder.aborted).toEqual(["POST /token"]), {
            timeout: 20_000,
            interval: 10
          })
        )
      })
    )
  )

  it.live("maps a refused connection to reason network", () =>
    Effect.gen(function* () {
      const port = yield* Effect.promise(closedPort)
      const client = yield* clientOf(
        providerFor("token-broker", { internalBaseUrl: { from: idp.issuer, to: `http://127.0.0.1:${port}` } })
      )
      const error = yield* failure(client.clientCredentials({ scopes: ["notes:read"] }))
      expect(error._tag).toBe("UpstreamUnavailable")
      if (error._tag === "UpstreamUnavailable") expect(error.reason).toBe("network")
    })
  )
})

describe("AuthorizationServers: expiry times come from Effect's Clock", () => {
  it.effect("computes expiresAt from the Clock at arrival (TestClock)", () =>
    Effect.gen(function* () {
      yield* TestClock.setTime(1_000_000)
      const client = yield* clientOf(providerFor("token-broker"))
      const fiber = yield* Effect.fork(client.clientCredentials({ scopes: ["notes:read"] }))
      const tokens = yield* Fiber.join(fiber)
      expect(tokens.expiresAt).toBe(1_000_000 + 300_000)
    })
  )
})

describe("AuthorizationServers: the HTTP agent lives as long as the layer", () => {
  it.live("once the layer is released, a client kept past it sends nothing", () =>
    Effect.gen(function* () {
      const provider = providerFor("token-broker")
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(AuthorizationServer.layer([provider]), scope)
      const client = yield* Context.get(context, AuthorizationServer.AuthorizationServers).get(provider.id)
      // While the layer lives, requests reach dev-idp: a made-up refresh token is refused by it.
      const refused = yield* failure(client.refresh({ refreshToken: Redacted.make("not-a-grant") }))
      expect(refused._tag).toBe("InvalidGrant")
      yield* Scope.close(scope, Exit.void)
      const before = idp.counters.count({ grantType: "refresh_token" })
      const closed = yield* failure(client.refresh({ refreshToken: Redacted.make("not-a-grant") }))
      expect(closed._tag === "UpstreamUnavailable" && closed.reason).toBe("network")
      expect(idp.counters.count({ grantType: "refresh_token" })).toBe(before)
    })
  )
})
