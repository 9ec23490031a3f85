/**
 * `@token-broker/client` against the real HTTP broker: every answer the client maps back into a typed
 * error, each made by the broker for real - a real dev-idp (its /__dev/ fault injection for upstream
 * failures, its server-side grant revocation for consent), real SQLite files, caller policies for the
 * 401s and 403s, real HTTP on port 0 bound by this process. The client's own package keeps a stand-in
 * server only for transport faults (packages/client/test/BrokerClient.test.ts).
 *
 * Why the test lives here: packages never import apps, and the broker app already has the client as a
 * devDependency (its end-to-end tests); the reverse devDependency would make a workspace cycle
 * (client -> broker-app -> client) that turbo refuses to order. Here the client is exercised as a
 * published package, through its public entry point.
 *
 * Codes the client maps that the broker never sends over the client's routes, and so are not driven
 * here: `authorization_not_pending` and `identity_mismatch` (only on /connect/callback, an HTML page of
 * the user's browser), `invalid_subject_token` and `audience_mismatch` as problem+json (at /oauth/token
 * they are RFC 6749 `invalid_request`, mapped by `exchangeErrorOf`, driven below), `config_invalid` (no
 * route's use case fails with it).
 */
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { SqliteClient } from "@effect/sql-sqlite-node"
import { BrokerClient, BrokerRequestError, layerRemote, RemoteTokenSource } from "@token-broker/client"
import { TokenSource } from "@token-broker/core"
import { type DevIdp, type DevIdpUser, startDevIdp } from "@token-broker/dev-idp"
import { Duration, Effect, ManagedRuntime, Redacted } from "effect"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import type { RunningBroker } from "../src/Broker.js"
import {
  CALLBACK,
  type CallerPolicyInput,
  finishConsent,
  newCaller,
  startPortZeroBroker
} from "./support/portZeroBroker.js"
import { CALLERS, type CallerSpec, MCP_AUDIENCE, userToken } from "./support/stack.js"

const user = (sub: string, username: string): DevIdpUser => ({
  sub,
  username,
  password: `pw-${Math.random().toString(36).slice(2)}`
})
// alice and bob: indexes 0 and 1, as `userToken` expects; narrow may act for u-bob only
const USERS = [
  user("u-alice", "alice"),
  user("u-bob", "bob"),
  user("u-carol", "carol"),
  user("u-dave", "dave"),
  user("u-erin", "erin")
] as const
const [ALICE, BOB, CAROL, DAVE, ERIN] = USERS

/** A caller whose id and secret need form-urlencoding in Basic credentials (RFC 6749 2.3.1). */
const ODD = { id: "odd:app@example", secret: "p:w +%/é&=" }
/** The rate-limited broker's caller that spends its budget. */
const LIMITED = newCaller("limited")

const POLICIES: ReadonlyArray<CallerPolicyInput> = [
  { caller: CALLERS.agent, backgroundTokens: true, tokenExchange: true, grants: "manage" },
  { caller: CALLERS.reader, grants: "read" },
  {
    caller: CALLERS.narrow,
    providers: ["notes"],
    subjects: ["u-bob"],
    scopes: ["notes:read"],
    backgroundTokens: true,
    tokenExchange: true,
    grants: "read"
  },
  { caller: ODD, backgroundTokens: true, grants: "read" },
  { caller: LIMITED, tokenExchange: true, grants: "read" }
]

/** Retries and circuit out of the way: one injected fault is one failed request. */
const ONE_ATTEMPT = { retryAttempts: 1, circuitFailureThreshold: 1_000 } as const

/** Longer than any access token dev-idp issues (300 s): no refresh can satisfy it, so the broker refuses it. */
const LONGER_THAN_ANY_TOKEN: Duration.DurationInput = "3600 seconds"

let idp: DevIdp
let dir: string
let broker: RunningBroker

const clientFor = (caller: CallerSpec, url = broker.url) =>
  BrokerClient.make({ url, clientId: caller.id, clientSecret: Redacted.make(caller.secret) })

const SECRETS = POLICIES.map((policy) => policy.caller.secret)

/** What a promise rejected with (fails the test when it resolves); no caller secret is in it. */
const rejection = async (promise: Promise<unknown>): Promise<unknown> => {
  const error = await promise.then(
    (value) => {
      throw new Error(`expected a failure, got ${JSON.stringify(value)}`)
    },
    (e: unknown) => e
  )
  const text = `${String(error)} ${JSON.stringify(error)}`
  for (const secret of SECRETS) expect(text.includes(secret), "a caller secret in an error").toBe(false)
  return error
}

/** The failure of a TokenSource call over the remote broker. */
const remoteFailure = <A, E>(
  caller: CallerSpec,
  use: (source: TokenSource.TokenSourceService) => Effect.Effect<A, E>,
  url = broker.url
) =>
  Effect.runPromise(
    Effect.flip(
      Effect.provide(
        Effect.flatMap(TokenSource.TokenSource, use),
        layerRemote({ url, clientId: caller.id, clientSecret: caller.secret })
      )
    )
  )

const seconds = (duration: Duration.Duration | undefined) =>
  duration === undefined ? undefined : Duration.toSeconds(duration)

/** Flow 2 through the client: authorize, dev-idp's pages, the callback. */
const connect = async (
  target: RunningBroker,
  who: DevIdpUser,
  provider = "notes",
  scopes?: ReadonlyArray<string>
) => {
  const started = await clientFor(CALLERS.agent, target.url).authorize({
    subject: who.sub,
    provider,
    ...(scopes === undefined ? {} : { scopes })
  })
  expect(await finishConsent(target, idp, started.authorizationUrl, who)).toBe(200)
}

/** The next refresh (or token exchange) of the broker's notes client at dev-idp answers with this fault. */
const nextUpstreamCall = (
  grantType: "refresh_token" | "urn:ietf:params:oauth:grant-type:token-exchange",
  fault:
    | { kind: "status"; status: number }
    | { kind: "rate_limit"; retryAfterSeconds: number }
    | { kind: "invalid_grant" }
) => idp.faults.inject({ ...fault, grantType, clientId: "token-broker" })

/**
 * Makes the next token call for this grant refresh: the caller reports the grant's current token as
 * refused upstream (a 401 from the API), which drops it from the broker's cache and store - the path a
 * real caller takes, with no fault in the broker or the provider.
 */
const forceRefresh = async (
  ref: { readonly subject: string; readonly provider: string },
  caller: CallerSpec = CALLERS.agent,
  url = broker.url
) => {
  const client = clientFor(caller, url)
  const current = await client.backgroundToken(ref)
  await client.reportRejected({ ...ref, accessToken: current.accessToken })
}

beforeAll(async () => {
  idp = await startDevIdp({
    mcpAudience: MCP_AUDIENCE,
    redirectUris: [CALLBACK],
    users: [...USERS],
    accessTokenTtlSeconds: 300 // LONGER_THAN_ANY_TOKEN is longer
  })
  dir = await mkdtemp(join(tmpdir(), "tb-client-"))
  broker = await startPortZeroBroker({
    idp,
    sqliteFile: join(dir, "main.db"),
    key: { kid: "k1", material: Buffer.alloc(32, 1).toString("base64") },
    callers: POLICIES,
    broker: ONE_ATTEMPT
  })
  // bob's grant: the one the token, policy, upstream-failure and validation tests ask for
  await connect(broker, BOB)
})
afterAll(async () => {
  await broker?.close()
  await idp?.close()
  if (dir !== undefined) await rm(dir, { recursive: true, force: true })
})
afterEach(() => {
  idp.faults.clear()
})

describe("the client against the real broker: answers and requests", () => {
  it("sends form-urlencoded Basic credentials the broker accepts, and reads its token, grant and list views", async () => {
    const odd = clientFor(ODD)
    const before = Date.now()
    const token = await odd.backgroundToken({ subject: BOB.sub, provider: "notes", minTtl: "30 seconds" })
    expect(Redacted.value(token.accessToken).length).toBeGreaterThan(20)
    expect(token.expiresAt).toBeGreaterThanOrEqual(before + 30_000)
    expect(token.scopes).toEqual(["notes:read", "notes:write"])
    const notes = await fetch(`${idp.notesApiUrl}/notes`, {
      headers: { authorization: `Bearer ${Redacted.value(token.accessToken)}` }
    })
    expect(notes.status).toBe(200)
    const grant = await odd.grant({ subject: BOB.sub, provider: "notes" })
    expect(grant).toMatchObject({ subject: BOB.sub, provider: "notes", status: "active", failureCount: 0 })
    const listed = await odd.listGrants({ filter: { subject: BOB.sub, status: "active" }, limit: 5 })
    expect(listed.items.map((g) => g.provider)).toEqual(["notes"])
    expect(await odd.grant({ subject: "u-nobody", provider: "notes" })).toBeUndefined()
  })

  it("401 unauthorized: BrokerRequestError, and UpstreamRejected invalid_client over the TokenSource", async () => {
    const impostor = { id: CALLERS.agent.id, secret: "not-the-secret" }
    const error = await rejection(
      clientFor(impostor).backgroundToken({ subject: BOB.sub, provider: "notes" })
    )
    expect(error).toBeInstanceOf(BrokerRequestError)
    expect(error).toMatchObject({ status: 401, code: "unauthorized" })
    expect(JSON.stringify(error)).not.toContain(impostor.secret)
    const atTokenEndpoint = await rejection(
      clientFor(impostor).exchange({ subjectToken: await userToken(idp), audience: "notes" })
    )
    expect(atTokenEndpoint).toMatchObject({ _tag: "BrokerRequestError", status: 401, code: "invalid_client" })
    const refused = { _tag: "UpstreamRejected", error: "invalid_client", status: 401 }
    expect(
      await remoteFailure(impostor, (s) => s.backgroundToken({ subject: BOB.sub, provider: "notes" }))
    ).toMatchObject(refused)
    expect(
      await remoteFailure(impostor, (s) =>
        s.sessionToken({ subjectToken: Redacted.make("t"), provider: "notes", scopes: [] })
      )
    ).toMatchObject(refused)
  })

  it("403 forbidden with each of its reasons; UpstreamRejected access_denied over the TokenSource", async () => {
    const reader = clientFor(CALLERS.reader)
    const narrow = clientFor(CALLERS.narrow)
    const cases: Array<[string, () => Promise<unknown>]> = [
      [
        "background_tokens_not_allowed",
        () => reader.backgroundToken({ subject: BOB.sub, provider: "notes" })
      ],
      ["subject_not_allowed", () => narrow.backgroundToken({ subject: ALICE.sub, provider: "notes" })],
      ["provider_not_allowed", () => narrow.backgroundToken({ subject: BOB.sub, provider: "other" })],
      [
        "scope_not_allowed",
        () => narrow.backgroundToken({ subject: BOB.sub, provider: "notes", scopes: ["notes:write"] })
      ],
      ["grants_not_allowed", () => reader.revoke({ subject: BOB.sub, provider: "notes" })],
      ["grants_not_allowed", () => reader.authorize({ subject: BOB.sub, provider: "notes" })],
      ["provider_not_allowed", () => narrow.listGrants()],
      ["subject_not_allowed", () => narrow.listGrants({ filter: { provider: "notes" } })],
      ["subject_not_allowed", () => narrow.grant({ subject: ALICE.sub, provider: "notes" })]
    ]
    for (const [reason, request] of cases) {
      const error = await rejection(request())
      expect(error, reason).toBeInstanceOf(BrokerRequestError)
      expect(error, reason).toMatchObject({ status: 403, code: "forbidden", reason })
    }
    expect(
      await remoteFailure(CALLERS.narrow, (s) => s.backgroundToken({ subject: ALICE.sub, provider: "notes" }))
    ).toMatchObject({ _tag: "UpstreamRejected", error: "access_denied", status: 403 })
    expect(
      await remoteFailure(CALLERS.narrow, (s) => s.grantStatus({ subject: BOB.sub, provider: "other" }))
    ).toMatchObject({ _tag: "UpstreamRejected", error: "access_denied", status: 403 })
  })

  it("409 consent required: no grant, invalid_grant after the user revoked at the provider, then reconsent_required", async () => {
    const agent = clientFor(CALLERS.agent)
    const none = await rejection(agent.backgroundToken({ subject: ALICE.sub, provider: "notes" }))
    expect(none).toMatchObject({
      _tag: "ConsentRequired",
      code: "consent_required",
      reason: "no_grant",
      subject: ALICE.sub,
      provider: "notes"
    })
    await connect(broker, ALICE)
    expect((await agent.backgroundToken({ subject: ALICE.sub, provider: "notes" })).source).toBe("store")

    // the user removes the app at the provider: the next refresh is refused with invalid_grant
    expect(await idp.revokeGrantOf({ subject: ALICE.sub, clientId: "token-broker" })).toBeGreaterThan(0)
    await forceRefresh({ subject: ALICE.sub, provider: "notes" })
    const revoked = await rejection(agent.backgroundToken({ subject: ALICE.sub, provider: "notes" }))
    expect(revoked).toMatchObject({ _tag: "ConsentRequired", reason: "invalid_grant", provider: "notes" })
    const marked = await rejection(agent.backgroundToken({ subject: ALICE.sub, provider: "notes" }))
    expect(marked).toMatchObject({ _tag: "ConsentRequired", reason: "reconsent_required" })
    expect((await agent.grant({ subject: ALICE.sub, provider: "notes" }))?.status).toBe("reconsent_required")
    expect(
      await remoteFailure(CALLERS.agent, (s) => s.backgroundToken({ subject: ALICE.sub, provider: "notes" }))
    ).toMatchObject({ _tag: "ConsentRequired", reason: "reconsent_required", subject: ALICE.sub })
  })

  it("409 consent required: scope_not_granted for a scope the user did not consent to", async () => {
    await connect(broker, CAROL, "notes", ["notes:read"])
    const error = await rejection(
      clientFor(CALLERS.agent).backgroundToken({
        subject: CAROL.sub,
        provider: "notes",
        scopes: ["notes:write"]
      })
    )
    expect(error).toMatchObject({ _tag: "ConsentRequired", reason: "scope_not_granted", subject: CAROL.sub })
  })

  it("503 upstream unavailable from the provider's 5xx and 429, with Retry-After; 502 upstream rejected", async () => {
    const agent = clientFor(CALLERS.agent)
    const bob = { subject: BOB.sub, provider: "notes" }
    // the stored token is dropped: every call below refreshes until one succeeds
    await forceRefresh(bob)

    // a 503 without Retry-After may follow a committed rotation (outcome unknown): not retried
    nextUpstreamCall("refresh_token", { kind: "status", status: 503 })
    const down = await rejection(agent.backgroundToken(bob))
    expect(down).toMatchObject({
      _tag: "UpstreamUnavailable",
      reason: "server_error",
      provider: "notes"
    })
    // the broker's own Retry-After when the provider named none
    expect(seconds((down as { retryAfter?: Duration.Duration }).retryAfter)).toBe(1)

    nextUpstreamCall("refresh_token", { kind: "rate_limit", retryAfterSeconds: 7 })
    const limited = await rejection(agent.backgroundToken(bob))
    expect(limited).toMatchObject({ _tag: "UpstreamUnavailable", reason: "rate_limited", provider: "notes" })
    expect(seconds((limited as { retryAfter?: Duration.Duration }).retryAfter)).toBe(7)

    nextUpstreamCall("refresh_token", { kind: "rate_limit", retryAfterSeconds: 11 })
    const viaSource = await remoteFailure(CALLERS.agent, (s) => s.backgroundToken(bob))
    expect(viaSource).toMatchObject({ _tag: "UpstreamUnavailable", reason: "rate_limited" })
    expect(seconds((viaSource as { retryAfter?: Duration.Duration }).retryAfter)).toBe(11)

    nextUpstreamCall("refresh_token", { kind: "status", status: 400 })
    const rejected = await rejection(agent.backgroundToken(bob))
    expect(rejected).toMatchObject({
      _tag: "UpstreamRejected",
      code: "upstream_rejected",
      provider: "notes",
      error: "invalid_request",
      errorDescription: "fault injected by dev-idp"
    })

    // none of that hurt the grant: the next call refreshes with the stored refresh token
    expect(idp.faults.active()).toEqual([])
    expect((await agent.backgroundToken(bob)).source).toBe("refresh")
    expect((await agent.grant({ subject: BOB.sub, provider: "notes" }))?.status).toBe("active")
  })

  it("404 and 400: provider not found, no grant, invalid requests naming the field, unknown routes, too large", async () => {
    const agent = clientFor(CALLERS.agent)
    for (const request of [
      () => agent.backgroundToken({ subject: BOB.sub, provider: "nope" }),
      () => agent.authorize({ subject: BOB.sub, provider: "nope" })
    ]) {
      expect(await rejection(request())).toMatchObject({ _tag: "ProviderNotFound", provider: "nope" })
    }
    // nothing to find or revoke is not a failure
    expect(await agent.grant({ subject: BOB.sub, provider: "nope" })).toBeUndefined()
    for (const ref of [
      { subject: BOB.sub, provider: "nope" },
      { subject: "u-nobody", provider: "notes" }
    ]) {
      expect(await agent.revoke(ref)).toEqual({
        removed: false,
        upstream: "not_attempted",
        accessTokens: "not_attempted",
        revokedAtProvider: { refreshToken: false, accessTokens: 0 }
      })
    }

    const invalid: Array<[string, () => Promise<unknown>]> = [
      ["cursor", () => agent.listGrants({ cursor: "nonsense" })],
      ["limit", () => agent.listGrants({ limit: 5_000 })],
      [
        "returnTo",
        () => agent.authorize({ subject: BOB.sub, provider: "notes", returnTo: "http://evil.test/" })
      ],
      ["minTtl", () => agent.backgroundToken({ subject: BOB.sub, provider: "notes", minTtl: "2 days" })],
      // the provider's tokens live 300 s: a healthy refresh cannot satisfy an hour
      [
        "minTtl",
        () => agent.backgroundToken({ subject: BOB.sub, provider: "notes", minTtl: LONGER_THAN_ANY_TOKEN })
      ]
    ]
    for (const [field, request] of invalid) {
      const error = await rejection(request())
      expect(error, field).toMatchObject({ _tag: "InvalidRequest", code: "invalid_request" })
      expect((error as { field: string }).field, field).toBe(field)
    }
    expect(
      await remoteFailure(CALLERS.agent, (s) => s.grantStatus({ subject: "a\u0001b", provider: "notes" }))
    ).toMatchObject({ _tag: "InvalidRequest" })

    const misrouted = clientFor(CALLERS.agent, `${broker.url}/not-here`)
    expect(await rejection(misrouted.backgroundToken({ subject: BOB.sub, provider: "notes" }))).toMatchObject(
      {
        _tag: "BrokerRequestError",
        status: 404,
        code: "not_found"
      }
    )
    // 300 scopes of 256 characters: a body over the broker's 64 KiB limit
    const huge = Array.from({ length: 300 }, (_, i) => `${i}`.padEnd(256, "s"))
    const tooLarge = await rejection(
      agent.backgroundToken({ subject: BOB.sub, provider: "notes", scopes: huge })
    )
    expect(tooLarge).toMatchObject({ _tag: "BrokerRequestError", status: 413, code: "payload_too_large" })
  })

  it("token exchange: RFC 6749 errors as BrokerRequestError, and core's errors over the TokenSource", async () => {
    const agent = clientFor(CALLERS.agent)
    const narrow = clientFor(CALLERS.narrow)
    const exchanged = await agent.exchange({
      subjectToken: Redacted.make(await userToken(idp)),
      audience: "notes",
      scopes: ["notes:read"]
    })
    expect(exchanged).toMatchObject({ source: "exchange", scopes: ["notes:read"], tokenType: "Bearer" })

    const garbage = await rejection(agent.exchange({ subjectToken: "garbage", audience: "notes" }))
    expect(garbage).toMatchObject({ _tag: "BrokerRequestError", status: 400, code: "invalid_request" })
    expect((garbage as Error).message).toMatch(/^subject_token/)
    const unknown = await rejection(
      agent.exchange({ subjectToken: await userToken(idp), audience: "https://unknown.example" })
    )
    expect(unknown).toMatchObject({ status: 400, code: "invalid_target" })
    const policy: Array<[string, () => Promise<unknown>]> = [
      [
        "unauthorized_client",
        async () =>
          clientFor(CALLERS.reader).exchange({ subjectToken: await userToken(idp), audience: "notes" })
      ],
      [
        "invalid_target",
        async () => narrow.exchange({ subjectToken: await userToken(idp, 1), audience: "other" })
      ],
      [
        "invalid_scope",
        async () =>
          narrow.exchange({
            subjectToken: await userToken(idp, 1),
            audience: "notes",
            scopes: ["notes:write"]
          })
      ],
      // alice's own token: narrow may act for u-bob only
      [
        "unauthorized_client",
        async () => narrow.exchange({ subjectToken: await userToken(idp, 0), audience: "notes" })
      ]
    ]
    for (const [code, request] of policy) {
      expect(await rejection(request()), code).toMatchObject({
        _tag: "BrokerRequestError",
        status: 403,
        code
      })
    }

    const session = async (scopes: ReadonlyArray<string> = []) => ({
      subjectToken: Redacted.make(await userToken(idp)),
      provider: "notes",
      scopes
    })
    expect(
      await remoteFailure(CALLERS.agent, (s) =>
        s.sessionToken({ subjectToken: Redacted.make("garbage"), provider: "notes", scopes: [] })
      )
    ).toMatchObject({ _tag: "InvalidSubjectToken" })
    const wrongAudience = await session()
    expect(
      await remoteFailure(CALLERS.agent, (s) =>
        s.sessionToken({ ...wrongAudience, audience: "https://unknown.example" })
      )
    ).toMatchObject({ _tag: "ProviderNotFound", provider: "notes" })
    const bobs = { ...(await session()), subjectToken: Redacted.make(await userToken(idp, 1)) }
    for (const asked of [
      { ...bobs, provider: "other" },
      { ...bobs, scopes: ["notes:write"] }
    ]) {
      expect(
        await remoteFailure(CALLERS.narrow, (s) => s.sessionToken(asked)),
        JSON.stringify(asked.scopes)
      ).toMatchObject({ _tag: "UpstreamRejected", error: "access_denied", status: 403 })
    }

    // the provider's token exchange fails: 503 temporarily_unavailable with Retry-After
    const exchange = "urn:ietf:params:oauth:grant-type:token-exchange" as const
    nextUpstreamCall(exchange, { kind: "status", status: 500 })
    const down = await rejection(agent.exchange({ subjectToken: await userToken(idp), audience: "notes" }))
    expect(down).toMatchObject({ _tag: "BrokerRequestError", status: 503, code: "temporarily_unavailable" })
    expect(seconds((down as BrokerRequestError).retryAfter)).toBe(1)
    nextUpstreamCall(exchange, { kind: "rate_limit", retryAfterSeconds: 9 })
    const limitedSession = await session()
    const limited = await remoteFailure(CALLERS.agent, (s) => s.sessionToken(limitedSession))
    expect(limited).toMatchObject({ _tag: "UpstreamUnavailable", provider: "notes" })
    expect(seconds((limited as { retryAfter?: Duration.Duration }).retryAfter)).toBe(9)

    // the provider refuses the exchange (a configuration problem, not worth a retry)
    nextUpstreamCall(exchange, { kind: "status", status: 400 })
    const refused = await rejection(agent.exchange({ subjectToken: await userToken(idp), audience: "notes" }))
    expect(refused).toMatchObject({ _tag: "BrokerRequestError", status: 502, code: "server_error" })
    nextUpstreamCall(exchange, { kind: "status", status: 400 })
    const refusedSession = await session()
    expect(await remoteFailure(CALLERS.agent, (s) => s.sessionToken(refusedSession))).toMatchObject({
      _tag: "UpstreamRejected",
      provider: "notes"
    })
    expect(idp.faults.active()).toEqual([])
  })
})

describe("the remote TokenSource's kept background tokens", () => {
  /**
   * The remote source over the broker, on a clock of the test's, counting what it sends; `held`: the
   * broker's answers to token requests reach the source only once the test calls `release`.
   */
  const keepingSource = (tokenCache?: false, held?: { answered: () => void; release: Promise<void> }) => {
    const clock = { now: Date.now() }
    const sent: Array<string> = []
    const source = RemoteTokenSource.make({
      url: broker.url,
      clientId: CALLERS.agent.id,
      clientSecret: CALLERS.agent.secret,
      tokenCache: tokenCache ?? { now: () => clock.now },
      send: async (request) => {
        sent.push(`${request.method} ${new URL(request.url).pathname}`)
        const answer = await fetch(request.url, {
          method: request.method,
          headers: request.headers,
          ...(request.body === undefined ? {} : { body: request.body }),
          signal: request.signal
        })
        const text = await answer.text()
        if (held !== undefined && request.url.endsWith("/token")) {
          held.answered()
          await held.release
        }
        return { status: answer.status, text, retryAfter: answer.headers.get("retry-after") ?? undefined }
      }
    })
    return { source, clock, sent }
  }
  const TOKEN_PATH = `/v1/grants/${CAROL.sub}/notes/token`

  it("serves a token again for half the life it had left, per scope set and minTtl; a refused token or a revoke forgets the grant's", async () => {
    await connect(broker, CAROL)
    const { source, clock, sent } = keepingSource()
    const whole = { subject: CAROL.sub, provider: "notes" }
    const read = { ...whole, scopes: ["notes:read"] }
    expect(source.cachedBackgroundToken?.(whole)).toBeUndefined()
    const token = await Effect.runPromise(source.backgroundToken(whole))
    expect(sent).toEqual([`POST ${TOKEN_PATH}`])
    // served again with nothing sent; another scope set is its own
    expect(source.cachedBackgroundToken?.(whole)).toBe(token)
    expect(source.cachedBackgroundToken?.({ ...whole, minTtl: "10 seconds" })).toBe(token)
    expect(source.cachedBackgroundToken?.(read)).toBeUndefined()
    const readToken = await Effect.runPromise(source.backgroundToken(read))
    expect(readToken.scopes).toEqual(["notes:read"])
    expect(source.cachedBackgroundToken?.({ ...read, scopes: ["notes:read", "notes:read"] })).toBe(readToken)
    expect(sent).toHaveLength(2)
    // a token that would not live the request's minimum is not served
    const left = token.expiresAt - clock.now
    expect(source.cachedBackgroundToken?.({ ...whole, minTtl: Duration.millis(left + 1) })).toBeUndefined()
    // past half its life left, the broker is asked again
    clock.now += Math.ceil(left / 2)
    expect(source.cachedBackgroundToken?.(whole)).toBeUndefined()
    const again = await Effect.runPromise(source.backgroundToken(whole))
    expect(sent).toHaveLength(3)
    expect(source.cachedBackgroundToken?.(whole)).toBe(again)

    // the API refused it: every token of the grant is forgotten before the broker hears of it
    await Effect.runPromise(source.reportRejected({ ...whole, accessToken: again.accessToken }))
    expect(source.cachedBackgroundToken?.(whole)).toBeUndefined()
    expect(source.cachedBackgroundToken?.(read)).toBeUndefined()
    const fresh = await Effect.runPromise(source.backgroundToken(whole))
    expect(Redacted.value(fresh.accessToken)).not.toBe(Redacted.value(again.accessToken))
    // a revoke forgets them too, and then the broker names what is missing
    await Effect.runPromise(source.revoke(whole))
    expect(source.cachedBackgroundToken?.(whole)).toBeUndefined()
    const gone = await Effect.runPromise(Effect.flip(source.backgroundToken(whole)))
    expect(gone).toMatchObject({ _tag: "ConsentRequired", reason: "no_grant" })
    // another subject's request never sees a kept token
    expect(source.cachedBackgroundToken?.({ subject: BOB.sub, provider: "notes" })).toBeUndefined()
  })

  it("a token the broker answered before a revoke, arriving after it, is not kept", async () => {
    await connect(broker, DAVE)
    const whole = { subject: DAVE.sub, provider: "notes" }
    let answered!: () => void
    let release!: () => void
    const brokerAnswered = new Promise<void>((done) => {
      answered = done
    })
    const { source } = keepingSource(undefined, {
      answered: () => answered(),
      release: new Promise<void>((done) => {
        release = done
      })
    })
    const asked = Effect.runPromise(source.backgroundToken(whole))
    await brokerAnswered
    // the broker has answered the token; the revoke runs while that answer is still on its way
    expect((await Effect.runPromise(source.revoke(whole))).removed).toBe(true)
    release()
    const token = await asked
    expect(Redacted.value(token.accessToken).length).toBeGreaterThan(20)
    // served to the call that asked, but never again: its grant was revoked meanwhile
    expect(source.cachedBackgroundToken?.(whole)).toBeUndefined()
  })

  it("with tokenCache false, every call asks the broker", async () => {
    const { source, sent } = keepingSource(false)
    expect(source.cachedBackgroundToken).toBeUndefined()
    await Effect.runPromise(source.backgroundToken({ subject: BOB.sub, provider: "notes" }))
    await Effect.runPromise(source.backgroundToken({ subject: BOB.sub, provider: "notes" }))
    expect(sent).toHaveLength(2)
  })
})

describe("a broker restarted with another key, and a locked database file", () => {
  let file: string
  let restarted: RunningBroker | undefined
  beforeAll(async () => {
    file = join(dir, "rekeyed.db")
    const first = await startPortZeroBroker({
      idp,
      sqliteFile: file,
      key: { kid: "k1", material: Buffer.alloc(32, 2).toString("base64") },
      callers: POLICIES,
      broker: ONE_ATTEMPT
    })
    try {
      await connect(first, DAVE)
    } finally {
      await first.close()
    }
    // the same file, but the key the grant was written under is gone from the key ring
    restarted = await startPortZeroBroker({
      idp,
      sqliteFile: file,
      key: { kid: "k2", material: Buffer.alloc(32, 3).toString("base64") },
      callers: POLICIES,
      broker: ONE_ATTEMPT,
      busyTimeout: "50 millis"
    })
  })
  afterAll(async () => {
    await restarted?.close()
  })

  it("500 decryption failed, naming the missing key id", async () => {
    const url = restarted?.url ?? ""
    const error = await rejection(
      clientFor(CALLERS.agent, url).backgroundToken({ subject: DAVE.sub, provider: "notes" })
    )
    expect(error).toMatchObject({ _tag: "DecryptionFailed", reason: "unknown_key", kid: "k1" })
    expect(
      await remoteFailure(
        CALLERS.agent,
        (s) => s.backgroundToken({ subject: DAVE.sub, provider: "notes" }),
        url
      )
    ).toMatchObject({ _tag: "DecryptionFailed", kid: "k1" })
  })

  it("503 storage unavailable while another connection holds the database's write lock", async () => {
    const url = restarted?.url ?? ""
    // a second connection to the file, as an operator's sqlite3 shell or a backup tool would hold one
    const other = ManagedRuntime.make(SqliteClient.layer({ filename: file }))
    const sql = (statement: string) =>
      other.runPromise(Effect.flatMap(SqliteClient.SqliteClient, (client) => client.unsafe(statement)))
    try {
      await sql("BEGIN IMMEDIATE")
      const error = await rejection(
        clientFor(CALLERS.agent, url).authorize({ subject: DAVE.sub, provider: "notes" })
      )
      expect(error).toMatchObject({ _tag: "StorageUnavailable", code: "storage_unavailable" })
      expect(
        await remoteFailure(
          CALLERS.agent,
          (s) => s.startAuthorization({ subject: DAVE.sub, provider: "notes" }),
          url
        )
      ).toMatchObject({ _tag: "StorageUnavailable" })
      await sql("ROLLBACK")
      // the lock released: the same request goes through
      const started = await clientFor(CALLERS.agent, url).authorize({ subject: DAVE.sub, provider: "notes" })
      expect(started.authorizationUrl.origin).toBe(idp.issuer)
    } finally {
      await other.dispose()
    }
  })
})

describe("a broker with a small rate limit and a circuit that opens at the first failure", () => {
  const BUDGET = 4
  let strict: RunningBroker | undefined
  beforeAll(async () => {
    strict = await startPortZeroBroker({
      idp,
      sqliteFile: join(dir, "strict.db"),
      key: { kid: "k1", material: Buffer.alloc(32, 4).toString("base64") },
      callers: POLICIES,
      rateLimit: { max: BUDGET, timeWindow: "10 minutes" },
      broker: { retryAttempts: 1, circuitFailureThreshold: 1, circuitOpenFor: "10 minutes" }
    })
  })
  afterAll(async () => {
    await strict?.close()
  })

  it("429 rate limited with Retry-After, at the grants API and the token endpoint", async () => {
    const url = strict?.url ?? ""
    const limited = clientFor(LIMITED, url)
    for (let i = 0; i < BUDGET; i++) await limited.listGrants()
    const error = await rejection(limited.listGrants())
    expect(error).toMatchObject({ _tag: "BrokerRequestError", status: 429, code: "rate_limited" })
    const retryAfter = seconds((error as BrokerRequestError).retryAfter) ?? 0
    expect(retryAfter).toBeGreaterThan(0)
    expect(retryAfter).toBeLessThanOrEqual(600)
    const atTokenEndpoint = await rejection(
      limited.exchange({ subjectToken: await userToken(idp), audience: "notes" })
    )
    expect(atTokenEndpoint).toMatchObject({ status: 429, code: "slow_down" })
    expect(seconds((atTokenEndpoint as BrokerRequestError).retryAfter)).toBeGreaterThan(0)
    const viaSource = await remoteFailure(
      LIMITED,
      (s) => s.grantStatus({ subject: BOB.sub, provider: "notes" }),
      url
    )
    expect(viaSource).toMatchObject({ _tag: "UpstreamUnavailable", reason: "rate_limited", status: 429 })
    expect(seconds((viaSource as { retryAfter?: Duration.Duration }).retryAfter)).toBeGreaterThan(0)
  })

  it("503 upstream unavailable, circuit_open, with the circuit's Retry-After", async () => {
    const target = strict as RunningBroker
    await connect(target, ERIN)
    const agent = clientFor(CALLERS.agent, target.url)
    const erin = { subject: ERIN.sub, provider: "notes" }
    // another caller forces the refresh: each caller has its own small rate-limit budget here
    await forceRefresh(erin, ODD, target.url)
    nextUpstreamCall("refresh_token", { kind: "status", status: 500 })
    expect(await rejection(agent.backgroundToken(erin))).toMatchObject({
      _tag: "UpstreamUnavailable",
      reason: "server_error"
    })
    const open = await rejection(agent.backgroundToken(erin))
    expect(open).toMatchObject({ _tag: "UpstreamUnavailable", reason: "circuit_open", provider: "notes" })
    const retryAfter = seconds((open as { retryAfter?: Duration.Duration }).retryAfter) ?? 0
    expect(retryAfter).toBeGreaterThan(0)
    expect(retryAfter).toBeLessThanOrEqual(600)
  })
})
