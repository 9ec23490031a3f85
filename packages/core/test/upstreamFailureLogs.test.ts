import { describe, expect, it } from "@effect/vitest"
import type { FaultSpec } from "@token-broker/dev-idp"
import { Effect, Layer, Redacted } from "effect"
import { TokenBroker } from "../src/index.js"
import {
  brokerLayer,
  capturing,
  connect,
  connected,
  dropCurrent,
  type Line,
  PROVIDER,
  useDevIdp,
  user
} from "./support/harness.js"

// Every refused or failed upstream call is logged once at warn level with the provider, the grant (where
// there is one), the error code and the status - never a token (issue 13, case 4).
const MCP = "http://127.0.0.1/mcp"
const dev = useDevIdp({ mcpAudience: MCP })

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

const refresh = (subject: string) =>
  Effect.flatMap(TokenBroker.TokenBroker, (broker) =>
    Effect.flip(broker.backgroundToken({ subject, provider: PROVIDER }))
  )

describe("a refused or failed upstream call is logged once at warn level", () => {
  const refreshFailures: ReadonlyArray<{
    readonly name: string
    readonly fault: FaultSpec
    readonly tag: string
    readonly errorCode: string
    readonly status: number
    readonly namesGrant: boolean
  }> = [
    {
      name: "answered invalid_grant",
      fault: { kind: "invalid_grant", grantType: "refresh_token" },
      tag: "ConsentRequired",
      errorCode: "invalid_grant",
      status: 400,
      namesGrant: true
    },
    {
      name: "refused with a 4xx OAuth error (a configuration problem)",
      fault: { kind: "status", status: 401, grantType: "refresh_token" },
      tag: "UpstreamRejected",
      errorCode: "invalid_request",
      status: 401,
      namesGrant: false
    },
    {
      name: "that failed with a 5xx",
      fault: { kind: "status", status: 500, grantType: "refresh_token" },
      tag: "UpstreamUnavailable",
      errorCode: "server_error",
      status: 500,
      namesGrant: false
    }
  ]

  for (const { name, fault, tag, errorCode, status, namesGrant } of refreshFailures)
    it.live(`a refresh ${name}`, () =>
      withLogs((lines) =>
        Effect.gen(function* () {
          const alice = user(dev.idp)
          yield* connect(dev.idp, alice)
          yield* dropCurrent(alice.sub)
          dev.idp.faults.inject(fault)
          expect((yield* refresh(alice.sub))._tag).toBe(tag)
          const warned = warnings(lines)
          expect(warned).toHaveLength(1)
          expect(warned[0]?.annotations).toMatchObject({
            provider: PROVIDER,
            ...(namesGrant ? { grant: expect.stringContaining(alice.sub) } : {}),
            operation: "refresh",
            errorCode,
            status
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
        const { broker, ref } = yield* connected(dev.idp, user(dev.idp))
        const reported = yield* broker.backgroundToken(ref)
        yield* broker.reportRejected({ ...ref, accessToken: reported.accessToken })
        expect((yield* broker.backgroundToken(ref)).source).toBe("refresh")
        expect(warnings(lines)).toEqual([])
      })
    )
  )
})
