import { BrokerClient, layerRemote } from "@token-broker/client"
import { TokenSource } from "@token-broker/core"
import { formatFindings, scanForSecrets } from "@token-broker/secret-scan"
import { Effect, Option, Redacted } from "effect"
import * as client from "openid-client"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  ACCESS_TOKEN_TYPE,
  basic,
  CALLERS,
  type CallerSpec,
  call,
  connectOverHttp,
  LogCapture,
  runSecrets,
  type Stack,
  startStack,
  TOKEN_EXCHANGE,
  userToken
} from "./support/stack.js"

/** openid-client configured against the broker's token endpoint, as any standard OAuth client would be. */
const oauthClient = (stack: Stack, caller: CallerSpec, method: "basic" | "post" = "basic") => {
  const configuration = new client.Configuration(
    { issuer: stack.url, token_endpoint: `${stack.url}/oauth/token` },
    caller.id,
    undefined,
    method === "basic" ? client.ClientSecretBasic(caller.secret) : client.ClientSecretPost(caller.secret)
  )
  client.allowInsecureRequests(configuration)
  return configuration
}

const exchange = async (
  stack: Stack,
  caller: CallerSpec,
  parameters: Record<string, string>,
  method: "basic" | "post" = "basic"
) => {
  const response = await client.genericGrantRequest(oauthClient(stack, caller, method), TOKEN_EXCHANGE, {
    subject_token_type: ACCESS_TOKEN_TYPE,
    ...parameters
  })
  runSecrets.add("access token exchanged at /oauth/token", response.access_token)
  return response
}

const oauthFailure = async (promise: Promise<unknown>) => {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e
  )
  if (error instanceof client.WWWAuthenticateChallengeError) {
    // a 401 with WWW-Authenticate: openid-client reports the challenge; the body is RFC 6749 all the same
    const body = (await error.response.json()) as { error: string; error_description: string }
    return { status: error.status, error: body.error, description: body.error_description }
  }
  expect(error).toBeInstanceOf(client.ResponseBodyError)
  const e = error as client.ResponseBodyError
  return { status: e.status, error: e.error, description: e.error_description ?? "" }
}

/** The value of one labelled series in Prometheus text, 0 when absent. */
const series = (text: string, name: string, labels: Record<string, string>) => {
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`)) continue
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`)))
      return Number(line.split(" ").pop())
  }
  return 0
}

describe.each(["sqlite", "postgres"] as const)("the HTTP broker end to end on %s", (backend) => {
  let stack: Stack
  // The whole suite runs at debug level; its last test scans every line for secrets (F19).
  const logs = new LogCapture()
  beforeAll(async () => {
    stack = await startStack({ backend, logLevel: "debug", logStream: logs })
  })
  afterAll(async () => {
    await stack?.stop()
  })

  it("openid-client's own RFC 8693 call against /oauth/token yields a working upstream token", async () => {
    const subjectToken = await userToken(stack.idp)
    for (const method of ["basic", "post"] as const) {
      const response = await exchange(
        stack,
        CALLERS.agent,
        { subject_token: subjectToken, audience: stack.idp.notesAudience, scope: "notes:read" },
        method
      )
      expect(response.token_type.toLowerCase()).toBe("bearer")
      expect(response.issued_token_type).toBe(ACCESS_TOKEN_TYPE)
      expect(response.scope).toBe("notes:read")
      expect(response.expires_in).toBeGreaterThan(0)
      const notes = await fetch(`${stack.idp.notesApiUrl}/notes`, {
        headers: { authorization: `Bearer ${response.access_token}` }
      })
      expect(notes.status).toBe(200)
    }
    // the provider id works as audience too
    const byId = await exchange(stack, CALLERS.agent, { subject_token: subjectToken, audience: "notes" })
    expect(byId.access_token.length).toBeGreaterThan(20)
  })

  it("every caller-policy denial answers 401/403 with the right error", async () => {
    const subjectToken = await userToken(stack.idp) // alice
    const wrongSecret = { id: CALLERS.agent.id, secret: "not-the-secret" }
    const unknown = { id: "nobody", secret: "whatever" }

    // /oauth/token: RFC 6749 errors
    for (const who of [wrongSecret, unknown]) {
      const failed = await oauthFailure(
        exchange(stack, who, { subject_token: subjectToken, audience: "notes" })
      )
      expect(failed).toMatchObject({ status: 401, error: "invalid_client" })
    }
    const noAuth = await fetch(`${stack.url}/oauth/token`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ grant_type: TOKEN_EXCHANGE, subject_token: subjectToken }).toString()
    })
    expect(noAuth.status).toBe(401)
    expect(noAuth.headers.get("www-authenticate")).toMatch(/^Basic /)
    expect(await noAuth.json()).toMatchObject({ error: "invalid_client" })
    expect(
      await oauthFailure(exchange(stack, CALLERS.reader, { subject_token: subjectToken, audience: "notes" }))
    ).toMatchObject({ status: 403, error: "unauthorized_client" })
    expect(
      await oauthFailure(exchange(stack, CALLERS.narrow, { subject_token: subjectToken, audience: "other" }))
    ).toMatchObject({ status: 403, error: "invalid_target" })
    expect(
      await oauthFailure(
        exchange(stack, CALLERS.narrow, {
          subject_token: subjectToken,
          audience: "notes",
          scope: "notes:write"
        })
      )
    ).toMatchObject({ status: 403, error: "invalid_scope" })
    // narrow may act for u-bob only: alice's token is refused
    expect(
      await oauthFailure(exchange(stack, CALLERS.narrow, { subject_token: subjectToken, audience: "notes" }))
    ).toMatchObject({ status: 403, error: "unauthorized_client" })
    // and bob's token is accepted, downscoped to narrow's scopes
    const bobs = await exchange(stack, CALLERS.narrow, {
      subject_token: await userToken(stack.idp, 1),
      audience: "notes"
    })
    expect(bobs.scope).toBe("notes:read")

    // non-policy errors of the token endpoint
    expect(
      await oauthFailure(exchange(stack, CALLERS.agent, { subject_token: "garbage", audience: "notes" }))
    ).toMatchObject({
      status: 400,
      error: "invalid_request"
    })
    expect(
      await oauthFailure(
        exchange(stack, CALLERS.agent, { subject_token: subjectToken, audience: "https://unknown.example" })
      )
    ).toMatchObject({ status: 400, error: "invalid_target" })

    // /v1: problem+json
    const alice = stack.idp.users[0]?.sub ?? ""
    const denials: Array<[CallerSpec | undefined, string, string, unknown, number, string]> = [
      [undefined, "POST", `/v1/grants/${alice}/notes/token`, {}, 401, "unauthorized"],
      [wrongSecret, "POST", `/v1/grants/${alice}/notes/token`, {}, 401, "unauthorized"],
      [CALLERS.reader, "POST", `/v1/grants/${alice}/notes/token`, {}, 403, "background_tokens_not_allowed"],
      [CALLERS.narrow, "POST", `/v1/grants/${alice}/notes/token`, {}, 403, "subject_not_allowed"],
      [CALLERS.narrow, "POST", "/v1/grants/u-bob/other/token", {}, 403, "provider_not_allowed"],
      [
        CALLERS.narrow,
        "POST",
        "/v1/grants/u-bob/notes/token",
        { scopes: ["notes:write"] },
        403,
        "scope_not_allowed"
      ],
      [CALLERS.reader, "DELETE", `/v1/grants/${alice}/notes`, undefined, 403, "grants_not_allowed"],
      [CALLERS.reader, "POST", `/v1/grants/${alice}/notes/authorize`, {}, 403, "grants_not_allowed"],
      [CALLERS.narrow, "GET", "/v1/grants", undefined, 403, "provider_not_allowed"],
      [CALLERS.narrow, "GET", "/v1/grants?provider=notes", undefined, 403, "subject_not_allowed"],
      [CALLERS.narrow, "GET", `/v1/grants/${alice}/notes`, undefined, 403, "subject_not_allowed"]
    ]
    for (const [caller, method, path, json, status, reason] of denials) {
      const answer = await call(stack, method, path, { caller, json })
      expect({ path, method, status: answer.status }).toEqual({ path, method, status })
      expect(answer.headers.get("content-type")).toContain("application/problem+json")
      if (status === 401) {
        expect(answer.body.code).toBe("unauthorized")
        expect(answer.headers.get("www-authenticate")).toMatch(/^Basic /)
      } else {
        expect(answer.body).toMatchObject({ code: "forbidden", reason, status })
      }
      expect(String(answer.body.detail).length).toBeGreaterThan(10)
    }
  })

  it("consent through dev-idp's headless driver and /connect/callback, then background tokens, listing and revoke", async () => {
    const before = await (await fetch(`${stack.url}/metrics`)).text()
    const bob = stack.idp.users[1]?.sub ?? ""
    // before consent: 409 with the way to consent
    const missing = await call(stack, "POST", `/v1/grants/${bob}/notes/token`, {
      caller: CALLERS.agent,
      json: {}
    })
    expect(missing.status).toBe(409)
    expect(missing.body).toMatchObject({ code: "consent_required", reason: "no_grant", provider: "notes" })
    expect(missing.body.authorize).toMatchObject({
      method: "POST",
      href: `/v1/grants/${bob}/notes/authorize`
    })

    const consent = await connectOverHttp(stack, 1)
    expect(consent.status).toBe(200)
    expect(consent.html).toContain("Connected to notes")
    // the callback is single use
    const replay = await fetch(consent.callback)
    expect(replay.status).toBe(400)
    expect(await replay.text()).toContain("already used or has expired")

    // background token for the connected subject: store (from the code exchange), then cache
    const first = await call(stack, "POST", `/v1/grants/${bob}/notes/token`, {
      caller: CALLERS.agent,
      json: { minTtl: 30 }
    })
    expect(first.status).toBe(200)
    expect(first.headers.get("cache-control")).toBe("no-store")
    expect(first.body).toMatchObject({ tokenType: "Bearer", source: "store" })
    const second = await call(stack, "POST", `/v1/grants/${bob}/notes/token`, { caller: CALLERS.agent })
    expect(second.body).toMatchObject({ source: "cache", accessToken: first.body.accessToken })
    // a downscoped token needs a refresh at the provider
    const narrowed = await call(stack, "POST", `/v1/grants/${bob}/notes/token`, { caller: CALLERS.narrow })
    expect(narrowed.status).toBe(200)
    expect(narrowed.body).toMatchObject({ source: "refresh", scopes: ["notes:read"] })
    const notes = await fetch(`${stack.idp.notesApiUrl}/notes`, {
      headers: { authorization: `Bearer ${String(narrowed.body.accessToken)}` }
    })
    expect(notes.status).toBe(200)

    // the refresh and cache counters moved
    const after = await (await fetch(`${stack.url}/metrics`)).text()
    expect(series(after, "token_requests_total", { provider: "notes", result: "hit" })).toBeGreaterThan(
      series(before, "token_requests_total", { provider: "notes", result: "hit" })
    )
    expect(series(after, "refresh_total", { provider: "notes", outcome: "success" })).toBeGreaterThan(
      series(before, "refresh_total", { provider: "notes", outcome: "success" })
    )
    expect(after).toMatch(
      /http_requests_total\{method="POST",route="\/v1\/grants\/:subject\/:provider\/token",status_code="200"\} \d+/
    )
    expect(after).toContain("# TYPE refresh_duration_seconds histogram")

    // status and listing
    const grant = await call(stack, "GET", `/v1/grants/${bob}/notes`, { caller: CALLERS.reader })
    expect(grant.status).toBe(200)
    expect(grant.body).toMatchObject({ subject: bob, provider: "notes", status: "active" })
    expect(JSON.stringify(grant.body)).not.toContain(String(first.body.accessToken))
    await connectOverHttp(stack, 0)
    const page1 = await call(stack, "GET", "/v1/grants?limit=1", { caller: CALLERS.reader })
    expect(page1.status).toBe(200)
    const items1 = page1.body.items as Array<{ subject: string }>
    expect(items1).toHaveLength(1)
    expect(typeof page1.body.nextCursor).toBe("string")
    const page2 = await call(
      stack,
      "GET",
      `/v1/grants?limit=1&cursor=${encodeURIComponent(String(page1.body.nextCursor))}`,
      {
        caller: CALLERS.reader
      }
    )
    const items2 = page2.body.items as Array<{ subject: string }>
    expect(items2.map((g) => g.subject)).not.toEqual(items1.map((g) => g.subject))
    const filtered = await call(stack, "GET", `/v1/grants?subject=${bob}&provider=notes&status=active`, {
      caller: CALLERS.narrow
    })
    expect(filtered.status).toBe(200)
    expect((filtered.body.items as Array<unknown>).length).toBe(1)
    const badCursor = await call(stack, "GET", "/v1/grants?cursor=nonsense", { caller: CALLERS.reader })
    expect(badCursor.status).toBe(400)
    expect(badCursor.body).toMatchObject({ code: "invalid_request", field: "cursor" })

    // revoke: gone at the provider and locally (its stored tokens on the scan's list first)
    await stack.rememberStored()
    const revoked = await call(stack, "DELETE", `/v1/grants/${bob}/notes`, { caller: CALLERS.agent })
    expect(revoked.status).toBe(200)
    expect(revoked.body).toMatchObject({ removed: true, upstream: "revoked" })
    expect((await call(stack, "GET", `/v1/grants/${bob}/notes`, { caller: CALLERS.agent })).body.code).toBe(
      "grant_not_found"
    )
    const afterRevoke = await call(stack, "POST", `/v1/grants/${bob}/notes/token`, { caller: CALLERS.agent })
    expect(afterRevoke.status).toBe(409)
  })

  it("the typed client and the remote TokenSource talk to it, with core's typed errors", async () => {
    const api = BrokerClient.make({
      url: stack.url,
      clientId: CALLERS.agent.id,
      clientSecret: CALLERS.agent.secret
    })
    const alice = stack.idp.users[0]?.sub ?? ""
    await connectOverHttp(stack, 0)
    const token = await api.backgroundToken({ subject: alice, provider: "notes", scopes: ["notes:write"] })
    expect(token.scopes).toEqual(["notes:write"])
    runSecrets.add("access token served to the typed client", Redacted.value(token.accessToken))
    expect((await api.grant({ subject: alice, provider: "notes" }))?.status).toBe("active")
    expect(await api.grant({ subject: "nobody", provider: "notes" })).toBeUndefined()
    const listed = await api.listGrants({ filter: { provider: "notes" }, limit: 10 })
    expect(listed.items.some((g) => g.subject === alice)).toBe(true)
    const exchanged = await api.exchange({
      subjectToken: await userToken(stack.idp),
      audience: "notes",
      scopes: ["notes:read"]
    })
    expect(exchanged.scopes).toEqual(["notes:read"])
    runSecrets.add("access token exchanged by the typed client", Redacted.value(exchanged.accessToken))
    const error = await api.backgroundToken({ subject: "nobody", provider: "notes" }).catch((e: unknown) => e)
    expect(error).toMatchObject({ _tag: "ConsentRequired", code: "consent_required", reason: "no_grant" })
    const started = await api.authorize({
      subject: alice,
      provider: "notes",
      returnTo: "http://app.example.test/done"
    })
    expect(started.authorizationUrl.origin).toBe(stack.idp.issuer)

    // the same app code over core's TokenSource tag, backed by the remote broker
    const program = Effect.gen(function* () {
      const source = yield* TokenSource.TokenSource
      const issued = yield* source.backgroundToken({ subject: alice, provider: "notes" })
      runSecrets.add("access token served to the remote TokenSource", Redacted.value(issued.accessToken))
      // the grant's refresh tokens so far, before it is revoked
      yield* Effect.promise(() => stack.rememberStored())
      const status = yield* source.grantStatus({ subject: alice, provider: "notes" })
      const missing = yield* Effect.flip(source.backgroundToken({ subject: "nobody", provider: "notes" }))
      const badToken = yield* Effect.flip(
        source.sessionToken({ subjectToken: Redacted.make("garbage"), provider: "notes" })
      )
      const revoked = yield* source.revoke({ subject: alice, provider: "notes" })
      return { issued, status, missing, badToken, revoked }
    })
    const result = await Effect.runPromise(
      Effect.provide(
        program,
        layerRemote({ url: stack.url, clientId: CALLERS.agent.id, clientSecret: CALLERS.agent.secret })
      )
    )
    expect(Redacted.value(result.issued.accessToken).length).toBeGreaterThan(20)
    expect(Option.map(result.status, (g) => g.provider)).toEqual(Option.some("notes"))
    expect(result.missing._tag).toBe("ConsentRequired")
    expect(result.badToken._tag).toBe("InvalidSubjectToken")
    expect(result.revoked.removed).toBe(true)

    const refused = await Effect.runPromise(
      Effect.flip(
        Effect.provide(
          Effect.flatMap(TokenSource.TokenSource, (s) =>
            s.backgroundToken({ subject: alice, provider: "notes" })
          ),
          layerRemote({ url: stack.url, clientId: CALLERS.agent.id, clientSecret: "wrong" })
        )
      )
    )
    expect(refused).toMatchObject({ _tag: "UpstreamRejected", error: "invalid_client" })
  })

  it("health, readiness, OpenAPI and docs", async () => {
    expect((await call(stack, "GET", "/healthz")).body).toEqual({ status: "ok" })
    const ready = await call(stack, "GET", "/readyz")
    expect(ready.status).toBe(200)
    expect(ready.body).toEqual({
      status: "ready",
      checks: { storage: "ok", providers: { notes: "ok", other: "ok" } }
    })
    const openapi = await call(stack, "GET", "/openapi.json")
    expect(openapi.body.openapi).toBe("3.1.0")
    expect(Object.keys(openapi.body.paths as object)).toContain("/oauth/token")
    // /docs is Swagger UI: its page, its own scripts (no inline ones), and the same generated document
    const docs = await fetch(`${stack.url}/docs`)
    expect(docs.headers.get("content-type")).toContain("text/html")
    expect(docs.headers.get("content-security-policy")).toContain("script-src 'self'")
    expect(await docs.text()).toContain('<div id="swagger-ui">')
    const bundle = await fetch(`${stack.url}/docs/static/swagger-ui-bundle.js`)
    expect(bundle.status).toBe(200)
    await bundle.arrayBuffer()
    const uiDocument = await call(stack, "GET", "/docs/json")
    expect(Object.keys(uiDocument.body.paths as object)).toContain("/v1/grants/{subject}/{provider}/token")
    const id = (
      await call(stack, "GET", "/healthz", { headers: { "x-request-id": "trace-123" } })
    ).headers.get("x-request-id")
    expect(id).toBe("trace-123")
    expect(basic(CALLERS.agent)).toMatch(/^Basic /)
  })
  it("the whole suite's debug logs hold no secret of the run in any encoding, nor any credential (F19)", async () => {
    await stack.rememberStored()
    const text = logs.text()
    expect(text).toContain('"level":20') // debug lines were written
    // the list holds what the suite handled, the stored refresh tokens and consents' verifiers among it
    for (const label of [
      "refresh token of",
      "PKCE code verifier of",
      "access token served",
      "user token of",
      "caller secret of",
      "client secret of",
      "key k1"
    ]) {
      expect(runSecrets.count(label), label).toBeGreaterThan(0)
    }
    const findings = scanForSecrets(text, runSecrets)
    expect(findings, formatFindings(findings)).toEqual([])
    // control: a stored refresh token, base64-encoded into these very logs, is found
    const refresh = [...runSecrets].find((s) => s.label.startsWith("refresh token of"))
    const planted = `${text}\n${Buffer.from(String(refresh?.value)).toString("base64")}\n`
    expect(scanForSecrets(planted, runSecrets).map((f) => [f.kind, f.label])).toContainEqual([
      "base64",
      refresh?.label
    ])
  })
})
