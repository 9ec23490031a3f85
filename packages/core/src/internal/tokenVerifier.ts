import { Clock, Duration, Effect, Either, Redacted } from "effect"
import {
  type CryptoKey,
  createRemoteJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  errors,
  type FlattenedJWSInput,
  type JWSHeaderParameters,
  type JWTPayload,
  jwtVerify
} from "jose"
import * as client from "openid-client"
import type { ProviderClient } from "../AuthorizationServer.js"
import { ConfigInvalid, type InvalidSubjectToken } from "../Errors.js"
import type { ClientAuthentication } from "../Provider.js"
import type { TokenVerifierService, VerifiedToken } from "../TokenVerifier.js"
import { makeIntrospectionClient } from "./authorizationServer.js"
import { cachedWithCooldown } from "./cachedWithCooldown.js"
import {
  ACCESS_TOKEN_TYP,
  audienceOf,
  checkAudience,
  invalid,
  mapJoseError,
  scopesOf
} from "./tokenClaims.js"
import { tokenDigest } from "./tokenDigest.js"

/** Where opaque tokens of an issuer are introspected (RFC 7662). */
export type IntrospectionOptions =
  /** A configured provider's client (its discovered `introspection_endpoint` and client authentication). */
  | { readonly client: Pick<ProviderClient, "introspect"> }
  /** An endpoint and the credentials of a client allowed to introspect there. */
  | {
      readonly endpoint: string
      readonly clientId: string
      readonly clientAuthentication: ClientAuthentication
    }

export interface IssuerOptions {
  /** The exact `iss` of accepted tokens. */
  readonly issuer: string
  /** The issuer's JWKS; discovered from `${issuer}/.well-known/openid-configuration` when unset. */
  readonly jwksUri?: string | undefined
  /** Opaque (non-JWT) tokens are introspected here. At most one issuer may have it. */
  readonly introspection?: IntrospectionOptions | undefined
}

export interface TokenVerifierOptions {
  readonly issuers: ReadonlyArray<IssuerOptions>
  /** Leeway on `exp`/`nbf`. Default 30 s. */
  readonly clockTolerance?: Duration.DurationInput | undefined
  /** How long an introspection answer is reused; never beyond the token's `exp`. Default 30 s. */
  readonly introspectionCacheTtl?: Duration.DurationInput | undefined
  /**
   * How long a JWT whose signature and claims verified is answered again without verifying its
   * signature (keyed by its SHA-256; `exp` is checked on every use; never beyond `exp`). A key removed
   * from the issuer's JWKS stops verifying tokens within this time. Default 30 s; 0 verifies every time.
   */
  readonly verifiedTokenCacheTtl?: Duration.DurationInput | undefined
  /** Allow http:// issuers, JWKS and introspection endpoints. Local development and tests only. */
  readonly allowInsecureRequests?: boolean | undefined
  /** Timeout of one discovery, JWKS or introspection request. Default 5 s. */
  readonly requestTimeout?: Duration.DurationInput | undefined
}

/** Asymmetric algorithms only: an `oct` key in a published JWKS would let anyone sign. */
const ALGORITHMS = [
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "ES512",
  "EdDSA",
  "Ed25519"
]
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/
const MAX_CACHE_ENTRIES = 10_000

type KeyResolver = (header: JWSHeaderParameters, input: FlattenedJWSInput) => Promise<CryptoKey>

interface IssuerState {
  readonly issuer: string
  readonly keys: Effect.Effect<KeyResolver, InvalidSubjectToken>
}

type Introspected = Either.Either<VerifiedToken, InvalidSubjectToken>

const checkUrl = (value: string, insecure: boolean, field: string): Effect.Effect<void, ConfigInvalid> => {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    return Effect.fail(new ConfigInvalid({ field, message: `${value} is not a URL` }))
  }
  if (url.protocol === "https:" || (insecure && url.protocol === "http:")) return Effect.void
  return Effect.fail(
    new ConfigInvalid({
      field,
      message:
        url.protocol === "http:"
          ? `${value} is http://; use https://, or set allowInsecureRequests: true (local development and tests only)`
          : `${value} must be an https:// URL`
    })
  )
}

/** A JWKS resolver that hands out public keys only: a JWKS that publishes private key material is refused. */
const publicKeysOnly =
  (resolver: KeyResolver): KeyResolver =>
  async (header, input) => {
    const key = await resolver(header, input)
    if (key.type !== "public") throw new errors.JWKSInvalid("the JWKS holds a non-public key")
    return key
  }

export const make = (options: TokenVerifierOptions): Effect.Effect<TokenVerifierService, ConfigInvalid> =>
  Effect.gen(function* () {
    const insecure = options.allowInsecureRequests === true
    const requestTimeout = Duration.decode(options.requestTimeout ?? "5 seconds")
    const timeoutMillis = Duration.toMillis(requestTimeout)
    const toleranceSeconds = Duration.toSeconds(Duration.decode(options.clockTolerance ?? "30 seconds"))
    const cacheTtlMillis = Duration.toMillis(Duration.decode(options.introspectionCacheTtl ?? "30 seconds"))
    const builtClock = yield* Effect.clock
    if (options.issuers.length === 0) {
      return yield* new ConfigInvalid({ field: "issuers", message: "at least one issuer is needed" })
    }

    const issuers = new Map<string, IssuerState>()
    let introspection: {
      readonly issuer: string
      readonly client: Pick<ProviderClient, "introspect">
    } | null = null

    for (const [index, entry] of options.issuers.entries()) {
      const field = `issuers[${index}]`
      if (issuers.has(entry.issuer)) {
        return yield* new ConfigInvalid({
          field: `${field}.issuer`,
          message: `${entry.issuer} is listed twice`
        })
      }
      yield* checkUrl(entry.issuer, insecure, `${field}.issuer`)
      if (entry.jwksUri !== undefined) yield* checkUrl(entry.jwksUri, insecure, `${field}.jwksUri`)

      const remoteSet = (jwksUri: string): KeyResolver =>
        publicKeysOnly(createRemoteJWKSet(new URL(jwksUri), { timeoutDuration: timeoutMillis }))
      const keys =
        entry.jwksUri !== undefined
          ? Effect.succeed(remoteSet(entry.jwksUri))
          : yield* cachedWithCooldown(
              Effect.tryPromise({
                try: async () => {
                  // openid-client validates the document (issuer match, https); the client id is unused.
                  const discovered = await client.discovery(
                    new URL(entry.issuer),
                    "token-broker-verifier",
                    undefined,
                    client.None(),
                    { timeout: timeoutMillis / 1000, execute: insecure ? [client.allowInsecureRequests] : [] }
                  )
                  const jwksUri = discovered.serverMetadata().jwks_uri
                  if (jwksUri === undefined) throw new TypeError("no jwks_uri")
                  const url = new URL(jwksUri)
                  if (url.protocol !== "https:" && !(insecure && url.protocol === "http:")) {
                    throw new TypeError("jwks_uri is not https://")
                  }
                  return remoteSet(jwksUri)
                },
                catch: () =>
                  invalid("unverifiable", `the keys of issuer ${entry.issuer} could not be discovered`)
              }),
              "5 seconds"
            )
      issuers.set(entry.issuer, { issuer: entry.issuer, keys })

      if (entry.introspection !== undefined) {
        if (introspection !== null) {
          return yield* new ConfigInvalid({
            field: `${field}.introspection`,
            message: `opaque tokens are already introspected at ${introspection.issuer}; only one issuer may introspect (an opaque token names no issuer, and it must not be sent to several)`
          })
        }
        const spec = entry.introspection
        const introspector =
          "client" in spec
            ? spec.client
            : yield* makeIntrospectionClient({
                issuer: entry.issuer,
                endpoint: spec.endpoint,
                clientId: spec.clientId,
                clientAuthentication: spec.clientAuthentication,
                allowInsecureRequests: insecure,
                requestTimeout,
                field: `${field}.introspection`
              })
        introspection = { issuer: entry.issuer, client: introspector }
      }
    }

    // JWTs that verified, by the token's SHA-256: a signature check costs far more than the rest of a
    // cached exchange, and the same subject token comes back on every call of a session
    const verifiedTtlMillis = Duration.toMillis(
      Duration.decode(options.verifiedTokenCacheTtl ?? "30 seconds")
    )
    const verifiedJwts = new Map<string, { readonly until: number; readonly token: VerifiedToken }>()
    const rememberVerified = (key: string, token: VerifiedToken, now: number) => {
      if (verifiedTtlMillis <= 0) return
      if (verifiedJwts.size >= MAX_CACHE_ENTRIES) {
        for (const [k, v] of verifiedJwts) if (v.until <= now) verifiedJwts.delete(k)
        const oldest = verifiedJwts.keys().next()
        if (verifiedJwts.size >= MAX_CACHE_ENTRIES && oldest.done !== true) verifiedJwts.delete(oldest.value)
      }
      verifiedJwts.set(key, { until: Math.min(now + verifiedTtlMillis, token.expiresAt), token })
    }

    /** A JWT whose verification is remembered and still fresh at `now`, by its digest. */
    const rememberedJwt = (digest: string, now: number): VerifiedToken | undefined => {
      const remembered = verifiedJwts.get(digest)
      if (remembered === undefined) return undefined
      if (remembered.until > now) return remembered.token
      verifiedJwts.delete(digest)
      return undefined
    }

    const verifyJwt = (token: string, cacheKey: string) =>
      Effect.gen(function* () {
        let payload: JWTPayload
        try {
          decodeProtectedHeader(token)
          payload = decodeJwt(token)
        } catch {
          return yield* invalid("malformed", "the token is not a well-formed JWT")
        }
        const state = typeof payload.iss === "string" ? issuers.get(payload.iss) : undefined
        if (state === undefined) return yield* invalid("issuer", "the token's issuer is not accepted")
        const keys = yield* state.keys
        const now = yield* Clock.currentTimeMillis
        const { payload: claims } = yield* Effect.tryPromise({
          try: () =>
            jwtVerify(token, keys, {
              issuer: state.issuer,
              typ: ACCESS_TOKEN_TYP,
              algorithms: ALGORITHMS,
              clockTolerance: toleranceSeconds,
              currentDate: new Date(now),
              requiredClaims: ["exp", "sub"]
            }),
          catch: mapJoseError
        })
        const verified: VerifiedToken = {
          issuer: state.issuer,
          subject: claims.sub as string,
          audience: audienceOf(claims.aud),
          scopes: scopesOf(claims),
          expiresAt: (claims.exp as number) * 1000,
          clientId:
            typeof claims.client_id === "string"
              ? claims.client_id
              : typeof claims.azp === "string"
                ? claims.azp
                : null,
          claims
        }
        rememberVerified(cacheKey, verified, now)
        return verified
      })

    const cache = new Map<string, { readonly until: number; readonly result: Introspected }>()
    const remember = (key: string, until: number, result: Introspected, now: number) => {
      if (until <= now) return
      if (cache.size >= MAX_CACHE_ENTRIES) {
        for (const [k, v] of cache) if (v.until <= now) cache.delete(k)
        const oldest = cache.keys().next()
        if (cache.size >= MAX_CACHE_ENTRIES && oldest.done !== true) cache.delete(oldest.value)
      }
      cache.set(key, { until, result })
    }

    const verifyOpaque = (token: Redacted.Redacted<string>) =>
      Effect.gen(function* () {
        if (introspection === null) {
          return yield* invalid("malformed", "the token is not a JWT and no issuer introspects opaque tokens")
        }
        const { issuer, client: introspector } = introspection
        const key = tokenDigest(token)
        const cached = cache.get(key)
        const before = yield* Clock.currentTimeMillis
        if (cached !== undefined && cached.until > before) return yield* cached.result
        if (cached !== undefined) cache.delete(key)

        const result = yield* introspector
          .introspect(token)
          .pipe(
            Effect.mapError((error) =>
              invalid("unverifiable", `introspection at ${issuer} failed: ${error.code} (${error.message})`)
            )
          )
        const now = yield* Clock.currentTimeMillis
        const toleranceMillis = toleranceSeconds * 1000
        const outcome: Introspected = (() => {
          if (!result.active) return Either.left(invalid("inactive", "the token is not active"))
          if (result.issuer !== null && result.issuer !== issuer) {
            return Either.left(invalid("issuer", "the introspected token names another issuer"))
          }
          if (result.tokenType !== undefined && !/^(bearer|dpop|access_token|n_a)$/i.test(result.tokenType)) {
            return Either.left(
              invalid("token_type", `the token is a ${result.tokenType}, not an access token`)
            )
          }
          if (result.subject === null)
            return Either.left(invalid("malformed", "the introspection names no subject"))
          if (result.expiresAt !== null && result.expiresAt + toleranceMillis <= now) {
            return Either.left(invalid("expired", "the token has expired"))
          }
          return Either.right({
            issuer,
            subject: result.subject,
            audience: result.audience,
            scopes: result.scopes,
            expiresAt: result.expiresAt ?? now + cacheTtlMillis,
            clientId: result.clientId,
            claims: {
              active: true,
              iss: issuer,
              sub: result.subject,
              aud: result.audience,
              scope: result.scopes.join(" "),
              ...(result.expiresAt === null ? {} : { exp: Math.floor(result.expiresAt / 1000) }),
              ...(result.clientId === null ? {} : { client_id: result.clientId })
            }
          })
        })()
        const until = Either.isRight(outcome)
          ? Math.min(now + cacheTtlMillis, outcome.right.expiresAt)
          : now + cacheTtlMillis
        remember(key, until, outcome, now)
        return yield* outcome
      })

    // A remembered JWT is answered without the shape test, the claims or the signature: one digest of the
    // token (shared with the session exchange, see tokenDigest) and one Map read.
    const service: TokenVerifierService = {
      verify: (token, expected) =>
        Effect.clockWith((clock) => {
          const audiences = typeof expected.audience === "string" ? [expected.audience] : expected.audience
          const digest = verifiedTtlMillis > 0 ? tokenDigest(token) : ""
          const remembered =
            verifiedTtlMillis > 0 ? rememberedJwt(digest, clock.unsafeCurrentTimeMillis()) : undefined
          if (remembered !== undefined) return checkAudience(remembered, audiences)
          const value = Redacted.value(token)
          const verified = JWT_SHAPE.test(value) ? verifyJwt(value, digest) : verifyOpaque(token)
          return Effect.flatMap(verified, (result) => checkAudience(result, audiences))
        }),
      remembered: (token, expected) => {
        if (verifiedTtlMillis <= 0) return undefined
        const verified = rememberedJwt(tokenDigest(token), builtClock.unsafeCurrentTimeMillis())
        if (verified === undefined) return undefined
        const { audience } = expected
        const matches =
          typeof audience === "string"
            ? verified.audience.includes(audience)
            : verified.audience.some((aud) => audience.includes(aud))
        return matches ? verified : undefined
      }
    }
    return service
  })
