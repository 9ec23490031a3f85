import { createServer, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { type DevIdp, startDevIdp } from "@token-broker/dev-idp"
import { Effect, Redacted, TestClock } from "effect"
import {
  type CryptoKey,
  decodeJwt,
  exportJWK,
  generateKeyPair,
  type JWK,
  type JWTPayload,
  SignJWT
} from "jose"
import * as AuthorizationServer from "../src/AuthorizationServer.js"
import type { ProviderConfig } from "../src/Provider.js"
import * as TokenVerifier from "../src/TokenVerifier.js"
import { closedPort } from "./support/closedPort.js"

const SCOPES = ["notes:read", "notes:write", "offline_access", "openid"]

let idp: DevIdp
/** A tiny JWKS server for an issuer whose keys the tests hold, so every validation branch can be reached. */
let jwksServer: Server
let jwksUrl: string
let servedKeys: { keys: JWK[] } = { keys: [] }
let signingKey: CryptoKey
const TEST_ISSUER = "https://issuer.test.example"
const TEST_KID = "test-key-1"
const TEST_AUDIENCE = "https://api.test.example"

beforeAll(async () => {
  idp = await startDevIdp()
  const { privateKey, publicKey } = await generateKeyPair("ES256", { extractable: true })
  signingKey = privateKey
  servedKeys = { keys: [{ ...(await exportJWK(publicKey)), kid: TEST_KID, alg: "ES256", use: "sig" }] }
  jwksServer = createServer((_req, res) => {
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(servedKeys))
  })
  await new Promise<void>((resolve) => jwksServer.listen(0, "127.0.0.1", resolve))
  jwksUrl = `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/jwks`
})
afterAll(async () => {
  await idp.close()
  jwksServer.closeAllConnections()
  await new Promise((resolve) => jwksServer.close(resolve))
})

const alice = () => {
  const user = idp.users.find((u) => u.username === "alice")
  if (user === undefined) throw new Error("dev-idp has no alice")
  return user
}

const login = (resource: string = idp.notesAudience) =>
  Effect.promise(() =>
    idp.login({
      clientId: "token-broker",
      username: alice().username,
      password: alice().password,
      scopes: SCOPES,
      resource
    })
  )

const devIdpVerifier = (options: Partial<TokenVerifier.TokenVerifierOptions> = {}) =>
  TokenVerifier.make({ issuers: [{ issuer: idp.issuer }], allowInsecureRequests: true, ...options })

const testVerifier = (options: Partial<TokenVerifier.TokenVerifierOptions> = {}) =>
  TokenVerifier.make({
    issuers: [{ issuer: TEST_ISSUER, jwksUri: jwksUrl }],
    allowInsecureRequests: true,
    ...options
  })

/** Mints a token for the test issuer, `typ` at+jwt, valid for 5 minutes from `now` unless overridden. */
const mint = (
  claims: { readonly [claim: string]: unknown } = {},
  header: { typ?: string; kid?: string; alg?: string } = {},
  now = Date.now(),
  key: CryptoKey = signingKey
) =>
  Effect.promise(() =>
    new SignJWT(
      withoutUndefined({
        iss: TEST_ISSUER,
        sub: "u-test",
        aud: TEST_AUDIENCE,
        iat: Math.floor(now / 1000),
        exp: Math.floor(now / 1000) + 300,
        scope: "b a",
        client_id: "some-client",
        ...claims
      })
    )
      .setProtectedHeader({
        alg: header.alg ?? "ES256",
        typ: header.typ ?? "at+jwt",
        kid: header.kid ?? TEST_KID
      })
      .sign(key)
  ).pipe(Effect.map(Redacted.make))

const withoutUndefined = (claims: { readonly [claim: string]: unknown }): JWTPayload =>
  Object.fromEntries(Object.entries(claims).filter((entry) => entry[1] !== undefined))

const failure = <A, E>(effect: Effect.Effect<A, E>) => Effect.flip(effect)

const reasonOf = (error: { readonly _tag: string; readonly reason?: string }) =>
  `${error._tag}:${error.reason}`

describe("TokenVerifier: JWT access tokens of dev-idp (keys from discovery)", () => {
  it.live("accepts a valid access token for the expected audience", () =>
    Effect.gen(function* () {
      const verifier = yield* devIdpVerifier()
      const tokens = yield* login()
      const verified = yield* verifier.verify(Redacted.make(tokens.access_token), {
        audience: [idp.notesAudience, "https://unrelated.example"]
      })
      expect(verified.issuer).toBe(idp.issuer)
      expect(verified.subject).toBe(alice().sub)
      expect(verified.audience).toEqual([idp.notesAudience])
      expect(verified.scopes).toEqual(["notes:read", "notes:write"])
      expect(verified.clientId).toBe("token-broker")
      expect(verified.expiresAt).toBe((decodeJwt(tokens.access_token).exp ?? 0) * 1000)
    })
  )

  it.live("refuses an ID token as an access token (token_type)", () =>
    Effect.gen(function* () {
      const verifier = yield* devIdpVerifier()
      const tokens = yield* login()
      const idToken = tokens.id_token ?? ""
      expect(idToken.split(".")).toHaveLength(3)
      const error = yield* failure(verifier.verify(Redacted.make(idToken), { audience: "token-broker" }))
      expect(reasonOf(error)).toBe("InvalidSubjectToken:token_type")
      expect(error.code).toBe("invalid_subject_token")
    })
  )

  it.live("refuses a token issued for another audience (AudienceMismatch)", () =>
    Effect.gen(function* () {
      const verifier = yield* devIdpVerifier()
      const tokens = yield* login()
      const error = yield* failure(
        verifier.verify(Redacted.make(tokens.access_token), { audience: "https://mcp.example" })
      )
      expect(error._tag).toBe("AudienceMismatch")
      if (error._tag !== "AudienceMismatch") return
      expect(error.code).toBe("audience_mismatch")
      expect(error.expected).toEqual(["https://mcp.example"])
      expect(error.actual).toEqual([idp.notesAudience])
    })
  )

  it.effect("refuses an expired token, with the leeway, on Effect's clock (TestClock)", () =>
    Effect.gen(function* () {
      const tokens = yield* login()
      const exp = (decodeJwt(tokens.access_token).exp ?? 0) * 1000
      yield* TestClock.setTime(Date.now())
      const verifier = yield* devIdpVerifier({ clockTolerance: "30 seconds" })
      const token = Redacted.make(tokens.access_token)
      const audience = { audience: idp.notesAudience }
      yield* verifier.verify(token, audience)
      yield* TestClock.setTime(exp + 20_000)
      yield* verifier.verify(token, audience)
      yield* TestClock.setTime(exp + 31_000)
      const error = yield* failure(verifier.verify(token, audience))
      expect(reasonOf(error)).toBe("InvalidSubjectToken:expired")
    })
  )

  it.live("refuses a token whose signature was tampered with", () =>
    Effect.gen(function* () {
      const verifier = yield* devIdpVerifier()
      const tokens = yield* login()
      const [header, payload, signature] = tokens.access_token.split(".") as [string, string, string]
      const flipped = `${signature.slice(0, 10)}${signature[10] === "A" ? "B" : "A"}${signature.slice(11)}`
      const badSignature = yield* failure(
        verifier.verify(Redacted.make(`${header}.${payload}.${flipped}`), { audience: idp.notesAudience })
      )
      expect(reasonOf(badSignature)).toBe("InvalidSubjectToken:signature")
      const claims = { ...decodeJwt(tokens.access_token), sub: "u-bob" }
      const forgedPayload = Buffer.from(JSON.stringify(claims)).toString("base64url")
      const forged = yield* failure(
        verifier.verify(Redacted.make(`${header}.${forgedPayload}.${signature}`), {
          audience: idp.notesAudience
        })
      )
      expect(reasonOf(forged)).toBe("InvalidSubjectToken:signature")
    })
  )

  it.live("refuses a token of an issuer it does not know", () =>
    Effect.gen(function* () {
      const verifier = yield* testVerifier()
      const tokens = yield* login()
      const error = yield* failure(
        verifier.verify(Redacted.make(tokens.access_token), { audience: idp.notesAudience })
      )
      expect(reasonOf(error)).toBe("InvalidSubjectToken:issuer")
    })
  )
})

describe("TokenVerifier: every JWT validation branch (an issuer whose keys the test holds)", () => {
  it.live("accepts a token of the test issuer (both at+jwt spellings)", () =>
    Effect.gen(function* () {
      const verifier = yield* testVerifier()
      const verified = yield* verifier.verify(yield* mint(), { audience: TEST_AUDIENCE })
      expect(verified.subject).toBe("u-test")
      expect(verified.scopes).toEqual(["a", "b"])
      expect(verified.clientId).toBe("some-client")
      yield* verifier.verify(yield* mint({}, { typ: "application/at+jwt" }), { audience: TEST_AUDIENCE })
    })
  )

  /** An unsigned token (alg none) with otherwise valid claims for the test issuer. */
  const unsigned = () => {
    const header = Buffer.from(JSON.stringify({ alg: "none", typ: "at+jwt" })).toString("base64url")
    const payload = Buffer.from(
      JSON.stringify({
        iss: TEST_ISSUER,
        sub: "u",
        aud: TEST_AUDIENCE,
        exp: Math.floor(Date.now() / 1000) + 60
      })
    ).toString("base64url")
    return Effect.succeed(Redacted.make(`${header}.${payload}.x`))
  }

  const refusals: ReadonlyArray<{
    readonly name: string
    /** A thunk: tokens are minted with the keys made before the tests. */
    readonly token: () => Effect.Effect<Redacted.Redacted<string>>
    readonly refused: string
  }> = [
    {
      name: "a token signed by another key under the issuer's kid (signature)",
      token: () =>
        Effect.flatMap(
          Effect.promise(() => generateKeyPair("ES256")),
          (other) => mint({}, {}, Date.now(), other.privateKey)
        ),
      refused: "InvalidSubjectToken:signature"
    },
    {
      name: "a token whose kid is not in the JWKS (signature)",
      token: () => mint({}, { kid: "unknown" }),
      refused: "InvalidSubjectToken:signature"
    },
    { name: "an unsigned (alg none) token", token: unsigned, refused: "InvalidSubjectToken:signature" },
    {
      name: "a JWT with another typ (token_type)",
      token: () => mint({}, { typ: "JWT" }),
      refused: "InvalidSubjectToken:token_type"
    },
    {
      name: "a token without exp (malformed)",
      token: () => mint({ exp: undefined }),
      refused: "InvalidSubjectToken:malformed"
    },
    {
      name: "a token without sub (malformed)",
      token: () => mint({ sub: undefined }),
      refused: "InvalidSubjectToken:malformed"
    },
    {
      name: "garbage in JWT form (malformed)",
      token: () => Effect.succeed(Redacted.make("a.b.c")),
      refused: "InvalidSubjectToken:malformed"
    },
    {
      name: "an opaque token (malformed)",
      token: () => Effect.succeed(Redacted.make("opaque-token")),
      refused: "InvalidSubjectToken:malformed"
    },
    {
      name: "a token without an audience (AudienceMismatch)",
      token: () => mint({ aud: undefined }),
      refused: "AudienceMismatch"
    }
  ]

  for (const { name, token, refused } of refusals)
    it.live(`refuses ${name}`, () =>
      Effect.gen(function* () {
        const verifier = yield* testVerifier()
        const error = yield* failure(verifier.verify(yield* token(), { audience: TEST_AUDIENCE }))
        // an error without a reason is known by its tag alone
        expect("reason" in error ? reasonOf(error) : error._tag).toBe(refused)
      })
    )

  /** A verifier that remembers verifications for 10 minutes, and a token living 60 s from now (TestClock). */
  const rememberingVerifier = Effect.gen(function* () {
    const start = Date.now()
    yield* TestClock.setTime(start)
    const verifier = yield* testVerifier({ verifiedTokenCacheTtl: "10 minutes", clockTolerance: "0 seconds" })
    const token = yield* mint({ exp: Math.floor(start / 1000) + 60 }, {}, start)
    return { verifier, token }
  })

  it.effect(
    "answers a verified token again from its cache, never past exp, and still checks the audience",
    () =>
      Effect.gen(function* () {
        const { verifier, token } = yield* rememberingVerifier
        const first = yield* verifier.verify(token, { audience: TEST_AUDIENCE })
        yield* TestClock.adjust("30 seconds")
        expect(yield* verifier.verify(token, { audience: TEST_AUDIENCE })).toEqual(first)
        const other = yield* failure(verifier.verify(token, { audience: "https://other.example" }))
        expect(other._tag).toBe("AudienceMismatch")
        yield* TestClock.adjust("31 seconds")
        const expired = yield* failure(verifier.verify(token, { audience: TEST_AUDIENCE }))
        expect(reasonOf(expired)).toBe("InvalidSubjectToken:expired")
      })
  )

  it.effect(
    "remembers synchronously only a verified token, by its exact value, for its audience, never past exp",
    () =>
      Effect.gen(function* () {
        const { verifier, token } = yield* rememberingVerifier
        const remembered = verifier.remembered
        if (remembered === undefined) throw new Error("this verifier remembers verifications")
        const expected = { audience: TEST_AUDIENCE }
        // nothing verified yet
        expect(remembered(token, expected)).toBeUndefined()
        const verified = yield* verifier.verify(token, expected)
        // another Redacted of the same token is the same token; one character more or less is another
        expect(remembered(Redacted.make(Redacted.value(token)), expected)).toEqual(verified)
        expect(remembered(Redacted.make(`${Redacted.value(token)}A`), expected)).toBeUndefined()
        expect(remembered(Redacted.make(Redacted.value(token).slice(0, -1)), expected)).toBeUndefined()
        expect(remembered(token, { audience: "https://other.example" })).toBeUndefined()
        yield* TestClock.adjust("59 seconds")
        expect(remembered(token, expected)).toEqual(verified)
        // at exp, by the clock: forgotten, and `verify` names it expired
        yield* TestClock.adjust("1 second")
        expect(remembered(token, expected)).toBeUndefined()
        const expired = yield* failure(verifier.verify(token, expected))
        expect(reasonOf(expired)).toBe("InvalidSubjectToken:expired")
      })
  )

  it.live("refuses a token that is not valid yet (nbf beyond the leeway)", () =>
    Effect.gen(function* () {
      const verifier = yield* testVerifier({ clockTolerance: "30 seconds" })
      const now = Math.floor(Date.now() / 1000)
      yield* verifier.verify(yield* mint({ nbf: now + 20 }), { audience: TEST_AUDIENCE })
      const error = yield* failure(
        verifier.verify(yield* mint({ nbf: now + 60 }), { audience: TEST_AUDIENCE })
      )
      expect(reasonOf(error)).toBe("InvalidSubjectToken:not_yet_valid")
    })
  )

  it.live("refuses keys from a JWKS that publishes private key material (unverifiable)", () =>
    Effect.gen(function* () {
      const saved = servedKeys
      const privateJwk = yield* Effect.promise(() => exportJWK(signingKey))
      servedKeys = { keys: [{ ...privateJwk, kid: TEST_KID, alg: "ES256", use: "sig" }] }
      const verifier = yield* testVerifier()
      const error = yield* failure(verifier.verify(yield* mint(), { audience: TEST_AUDIENCE })).pipe(
        Effect.ensuring(Effect.sync(() => (servedKeys = saved)))
      )
      expect(reasonOf(error)).toBe("InvalidSubjectToken:unverifiable")
    })
  )

  it.live("answers unverifiable when the JWKS cannot be fetched", () =>
    Effect.gen(function* () {
      const port = yield* Effect.promise(closedPort)
      const verifier = yield* TokenVerifier.make({
        issuers: [{ issuer: TEST_ISSUER, jwksUri: `http://127.0.0.1:${port}/jwks` }],
        allowInsecureRequests: true
      })
      const error = yield* failure(verifier.verify(yield* mint(), { audience: TEST_AUDIENCE }))
      expect(reasonOf(error)).toBe("InvalidSubjectToken:unverifiable")
    })
  )
})

describe("TokenVerifier: configuration", () => {
  it.effect("refuses http:// without allowInsecureRequests, naming the field", () =>
    Effect.gen(function* () {
      const error = yield* failure(TokenVerifier.make({ issuers: [{ issuer: "http://idp.example" }] }))
      expect(error._tag).toBe("ConfigInvalid")
      expect(error.field).toBe("issuers[0].issuer")
      const jwks = yield* failure(
        TokenVerifier.make({
          issuers: [{ issuer: "https://idp.example", jwksUri: "http://idp.example/jwks" }]
        })
      )
      expect(jwks.field).toBe("issuers[0].jwksUri")
    })
  )

  it.effect("refuses two issuers that both introspect opaque tokens", () =>
    Effect.gen(function* () {
      const introspection = {
        endpoint: "https://a.example/introspect",
        clientId: "c",
        clientAuthentication: { method: "client_secret_basic" as const, clientSecret: Redacted.make("s") }
      }
      const error = yield* failure(
        TokenVerifier.make({
          issuers: [
            { issuer: "https://a.example", introspection },
            { issuer: "https://b.example", introspection }
          ]
        })
      )
      expect(error._tag).toBe("ConfigInvalid")
      expect(error.field).toBe("issuers[1].introspection")
    })
  )
})

describe("TokenVerifier: opaque tokens through introspection (dev-idp)", () => {
  const provider = (): ProviderConfig => ({
    id: "dev-idp",
    issuer: idp.issuer,
    clientId: "token-broker",
    clientAuthentication: {
      method: "client_secret_basic",
      clientSecret: Redacted.make(idp.client("token-broker").clientSecret ?? "")
    },
    redirectUri: idp.client("token-broker").redirectUris[0] ?? "",
    defaultScopes: SCOPES,
    allowInsecureRequests: true
  })

  /** The verifier with the provider's client for introspection, counting the introspection calls. */
  const countingVerifier = (options: Partial<TokenVerifier.TokenVerifierOptions> = {}) =>
    Effect.gen(function* () {
      const servers = yield* AuthorizationServer.make([provider()])
      const client = yield* servers.get("dev-idp")
      const calls = { count: 0 }
      const verifier = yield* TokenVerifier.make({
        issuers: [
          {
            issuer: idp.issuer,
            introspection: {
              client: {
                introspect: (token) =>
                  Effect.sync(() => calls.count++).pipe(Effect.zipRight(client.introspect(token)))
              }
            }
          }
        ],
        allowInsecureRequests: true,
        ...options
      })
      return { verifier, calls }
    })

  it.live("accepts an active opaque token (endpoint + client credentials)", () =>
    Effect.gen(function* () {
      const metadata = yield* Effect.promise(() =>
        fetch(`${idp.issuer}/.well-known/openid-configuration`).then(
          (response) => response.json() as Promise<{ introspection_endpoint: string }>
        )
      )
      const verifier = yield* TokenVerifier.make({
        issuers: [
          {
            issuer: idp.issuer,
            introspection: {
              endpoint: metadata.introspection_endpoint,
              clientId: "token-broker-post",
              clientAuthentication: {
                method: "client_secret_post",
                clientSecret: Redacted.make(idp.client("token-broker-post").clientSecret ?? "")
              }
            }
          }
        ],
        allowInsecureRequests: true
      })
      const tokens = yield* login(idp.opaqueAudience)
      const verified = yield* verifier.verify(Redacted.make(tokens.access_token), {
        audience: idp.opaqueAudience
      })
      expect(verified.subject).toBe(alice().sub)
      expect(verified.issuer).toBe(idp.issuer)
      expect(verified.clientId).toBe("token-broker")
      expect(verified.scopes).toEqual(["notes:read", "notes:write"])
      const mismatch = yield* failure(
        verifier.verify(Redacted.make(tokens.access_token), { audience: idp.notesAudience })
      )
      expect(mismatch._tag).toBe("AudienceMismatch")
    })
  )

  it.effect("caches an answer briefly, then sees the revocation (inactive)", () =>
    Effect.gen(function* () {
      yield* TestClock.setTime(Date.now())
      const { verifier, calls } = yield* countingVerifier({ introspectionCacheTtl: "30 seconds" })
      const tokens = yield* login(idp.opaqueAudience)
      const token = Redacted.make(tokens.access_token)
      const expected = { audience: idp.opaqueAudience }
      yield* verifier.verify(token, expected)
      yield* Effect.promise(() => idp.revokeGrantOf({ accessToken: tokens.access_token }))
      yield* verifier.verify(token, expected)
      expect(calls.count).toBe(1)
      yield* TestClock.adjust("31 seconds")
      const error = yield* failure(verifier.verify(token, expected))
      expect(reasonOf(error)).toBe("InvalidSubjectToken:inactive")
      expect(calls.count).toBe(2)
      // an inactive answer is cached too
      yield* failure(verifier.verify(token, expected))
      expect(calls.count).toBe(2)
    })
  )

  it.effect("never caches an answer beyond the token's exp", () =>
    Effect.gen(function* () {
      idp.addResource({
        audience: "urn:test:short-lived",
        scopes: ["notes:read"],
        format: "opaque",
        accessTokenTtlSeconds: 5
      })
      yield* TestClock.setTime(Date.now())
      const { verifier, calls } = yield* countingVerifier({
        introspectionCacheTtl: "10 minutes",
        clockTolerance: "0 seconds"
      })
      const tokens = yield* login("urn:test:short-lived")
      const token = Redacted.make(tokens.access_token)
      const expected = { audience: "urn:test:short-lived" }
      yield* verifier.verify(token, expected)
      yield* verifier.verify(token, expected)
      expect(calls.count).toBe(1)
      yield* TestClock.adjust("6 seconds")
      const error = yield* failure(verifier.verify(token, expected))
      expect(calls.count).toBe(2)
      expect(reasonOf(error)).toBe("InvalidSubjectToken:expired")
    })
  )

  it.live("answers unverifiable when the introspection endpoint fails", () =>
    Effect.gen(function* () {
      const port = yield* Effect.promise(closedPort)
      const verifier = yield* TokenVerifier.make({
        issuers: [
          {
            issuer: idp.issuer,
            introspection: {
              endpoint: `http://127.0.0.1:${port}/introspect`,
              clientId: "token-broker",
              clientAuthentication: { method: "client_secret_basic", clientSecret: Redacted.make("x") }
            }
          }
        ],
        allowInsecureRequests: true
      })
      const error = yield* failure(
        verifier.verify(Redacted.make("opaque-token"), { audience: idp.opaqueAudience })
      )
      expect(reasonOf(error)).toBe("InvalidSubjectToken:unverifiable")
      expect(error._tag === "InvalidSubjectToken" && error.message).not.toContain("opaque-token")
    })
  )
})
