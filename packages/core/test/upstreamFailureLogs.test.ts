import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Redacted } from "effect"
import { TokenBroker } from "../src/index.js"
import { brokerLayer, capturing, connect, type Line, PROVIDER, user, withDevIdp } from "./support/harness.js"

// Every refused or failed upstream call is logged once at warn level with the provider, the grant (where
// there is one), the error code and the status - never a token (issue 13, case 4).
const MCP = "http://127.0.0.1/mcp"
const dev = withDevIdp({ mcpAudience: MCP })
beforeAll(dev.start)
afterAll(dev.stop)

const withLogs = <A, E>(run: (lines: Array<Line>) => Effect.Effect<A, E, TokenBroker.TokenBroker>) => {
  const lines: Array<Line> = []
  dev.idp.faults.clear()
  return run(lines).pipe(Effect.provide(Layer.merge(brokerLayer(dev.idp), capturing(lines))))
}

const warnings = (lines: ReadonlyArray<Line>) => lines.filter((line) => line.level === "WARN")

/** Lines must not carry anything that looks like a JWT or a long opaque token. */
const expectNoTokens = (lines: ReadonlyArray<Line>, ...secrets: ReadonlyArray<string>) => {
  const text = JSON.stringify(lines)
  for (const secret of secrets) expect(text).not.toContain(secret)
  expect(text).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}/)
}

/** The next call must refresh: the current token is reported refused upstream, so the broker drops it. */
const dropCurrent = (subject: string) =>
  Effect.gen(function* () {
    const broker = yield* TokenBroker.TokenBroker
    const current = yield* broker.backgroundToken({ subject, provider: PROVIDER })
    yield* broker.reportRejected({ subject, provider: PROVIDER, accessToken: current.accessToken })
  })

const refresh = (subject: string) =>
  Effect.flatMap(TokenBroker.TokenBroker, (broker) =>
    Effect.flip(broker.backgroundToken({ subject, provider: PROVIDER }))
  )

describe("a refused or failed upstream call is logged once at warn level", () => {
  it.live("a refresh answered invalid_grant", () =>
    withLogs((lines) =>
      Effect.gen(function* () {
        const alice = user(dev.idp)
        yield* connect(dev.idp, alice)
        yield* dropCurrent(alice.sub)
        dev.idp.faults.inject({ kind: "invalid_grant", grantType: "refresh_token" })
        expect((yield* refresh(alice.sub))._tag).toBe("ConsentRequired")
        const warned = warnings(lines)
        expect(warned).toHaveLength(1)
        expect(warned[0]?.annotations).toMatchObject({
          provider: PROVIDER,
          grant: expect.stringContaining(alice.sub),
          operation: "refresh",
          errorCode: "invalid_grant",
          status: 400
        })
        expectNoTokens(lines)
      })
    )
  )

  it.live("a refresh refused with a 4xx OAuth error (a configuration problem)", () =>
    withLogs((lines) =>
      Effect.gen(function* () {
        const alice = user(dev.idp)
        yield* connect(dev.idp, alice)
        yield* dropCurrent(alice.sub)
        dev.idp.faults.inject({ kind: "status", status: 401, grantType: "refresh_token" })
        expect((yield* refresh(alice.sub))._tag).toBe("UpstreamRejected")
        const warned = warnings(lines)
        expect(warned).toHaveLength(1)
        expect(warned[0]?.annotations).toMatchObject({
          provider: PROVIDER,
          operation: "refresh",
          errorCode: "invalid_request",
          status: 401
        })
        expectNoTokens(lines)
      })
    )
  )

  it.live("a refresh that failed with a 5xx", () =>
    withLogs((lines) =>
      Effect.gen(function* () {
        const alice = user(dev.idp)
        yield* connect(dev.idp, alice)
        yield* dropCurrent(alice.sub)
        dev.idp.faults.inject({ kind: "status", status: 500, grantType: "refresh_token" })
        expect((yield* refresh(alice.sub))._tag).toBe("UpstreamUnavailable")
        const warned = warnings(lines)
        expect(warned).toHaveLength(1)
        expect(warned[0]?.annotations).toMatchObject({
          provider: PROVIDER,
          operation: "refresh",
          errorCode: "server_error",
          status: 500
        })
        expectNoTokens(lines)
      })
    )
  )

  it.live("a code exchange the provider refused", () =>
    withLogs((lines) =>
      Effect.gen(function* () {
        const bob = user(dev.idp, 1)
        dev.idp.faults.inject({ kind: "invalid_grant", grantType: "authorization_code" })
        const error = yield* Effect.flip(connect(dev.idp, bob))
        expect(error._tag).toBe("UpstreamRejected")
        const warned = warnings(lines)
        expect(warned).toHaveLength(1)
        expect(warned[0]?.annotations).toMatchObject({
          provider: PROVIDER,
          grant: expect.stringContaining(bob.sub),
          operation: "code exchange",
          errorCode: "invalid_grant",
          status: 400
        })
        expectNoTokens(lines)
      })
    )
  )

  it.live("a token exchange the provider refused", () =>
    withLogs((lines) =>
      Effect.gen(function* () {
        const alice = user(dev.idp)
        const response = yield* Effect.promise(() =>
          dev.idp.login({
            clientId: "mcp-client",
            username: alice.username,
            password: alice.password,
            scopes: ["openid", "notes:read"],
            resource: MCP
          })
        )
        const broker = yield* TokenBroker.TokenBroker
        dev.idp.faults.inject({
          kind: "status",
          status: 503,
          grantType: "urn:ietf:params:oauth:grant-type:token-exchange"
        })
        const error = yield* Effect.flip(
          broker.sessionToken({
            subjectToken: Redacted.make(response.access_token),
            provider: PROVIDER,
            scopes: ["notes:read"]
          })
        )
        expect(error._tag).toBe("UpstreamUnavailable")
        const warned = warnings(lines)
        expect(warned).toHaveLength(1)
        expect(warned[0]?.annotations).toMatchObject({
          provider: PROVIDER,
          operation: "token exchange",
          errorCode: "server_error",
          status: 503
        })
        expectNoTokens(lines, response.access_token)
      })
    )
  )

  it.live("control: a successful refresh logs no warning", () =>
    withLogs((lines) =>
      Effect.gen(function* () {
        const alice = user(dev.idp)
        yield* connect(dev.idp, alice)
        const broker = yield* TokenBroker.TokenBroker
        const reported = yield* broker.backgroundToken({ subject: alice.sub, provider: PROVIDER })
        yield* broker.reportRejected({
          subject: alice.sub,
          provider: PROVIDER,
          accessToken: reported.accessToken
        })
        expect((yield* broker.backgroundToken({ subject: alice.sub, provider: PROVIDER })).source).toBe(
          "refresh"
        )
        expect(warnings(lines)).toEqual([])
      })
    )
  )
})
