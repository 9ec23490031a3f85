import { beforeEach, describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Logger, LogLevel, Option } from "effect"
import {
  brokerLayer,
  capturing,
  connected,
  dropCurrent,
  type Line,
  PROVIDER,
  refreshRequests,
  storedRefreshToken,
  useDevIdp,
  user
} from "./support/harness.js"

// Real time, real dev-idp: a provider that refuses a refresh with a bare status and no OAuth error body
// (Glewlwyd 2.7.5 does this for a replayed or unknown refresh token, F23). Each test drops the current
// access token (reported refused upstream) so that the next call refreshes.
const dev = useDevIdp()
// a fault a failed test left unconsumed never spills into the next one
beforeEach(() => dev.idp.faults.clear())

describe("a refresh refused without an OAuth error body", () => {
  it.live("a bare 400 marks the grant for consent (refused_without_error) and logs what came back", () => {
    const lines: Array<Line> = []
    return Effect.gen(function* () {
      const alice = user(dev.idp)
      const { broker, ref } = yield* connected(dev.idp, alice)
      yield* dropCurrent(alice.sub)
      const refreshToken = yield* storedRefreshToken(alice.sub)
      dev.idp.counters.reset()
      dev.idp.faults.inject({ kind: "bare_status", status: 400, grantType: "refresh_token" })
      const error = yield* Effect.flip(broker.backgroundToken(ref))
      expect(error._tag).toBe("ConsentRequired")
      if (error._tag === "ConsentRequired") expect(error.reason).toBe("refused_without_error")
      expect(error.message).toMatch(/HTTP 400/)
      const status = Option.getOrThrow(yield* broker.grantStatus(ref))
      expect(status.status).toBe("reconsent_required")
      expect(status.lastErrorCode).toBe("refused_without_error")
      // the next call asks for consent without another request to the provider
      const again = yield* Effect.flip(broker.backgroundToken(ref))
      if (again._tag !== "ConsentRequired") throw new Error(`expected ConsentRequired, got ${again._tag}`)
      expect(again.reason).toBe("refused_without_error")
      expect(refreshRequests(dev.idp)).toBe(1)
      const warned = lines.filter(
        (l) => l.level === "WARN" && l.annotations.outcome === "refused_without_error"
      )
      expect(warned).toHaveLength(1)
      expect(warned[0]?.annotations).toMatchObject({ provider: PROVIDER, status: 400, contentType: "none" })
      expect(JSON.stringify(lines)).not.toContain(refreshToken)
    }).pipe(Effect.provide(Layer.merge(brokerLayer(dev.idp), capturing(lines))))
  })

  it.live("a 401 with an HTML page: the log shows its first bytes, never a token-like run in them", () => {
    const lines: Array<Line> = []
    const secretLike = "eyJhbGciOiJSUzI1NiJ9.c2VjcmV0LXRoYXQtbXVzdC1ub3QtbGVhaw.abcdefghijklmnop"
    return Effect.gen(function* () {
      const bob = user(dev.idp, 1)
      const { broker, ref } = yield* connected(dev.idp, bob)
      yield* dropCurrent(bob.sub)
      dev.idp.faults.inject({
        kind: "bare_status",
        status: 401,
        body: `<html><body>Access denied ${secretLike}</body></html>`,
        contentType: "text/html; charset=utf-8",
        grantType: "refresh_token"
      })
      const error = yield* Effect.flip(broker.backgroundToken(ref))
      expect(error._tag).toBe("ConsentRequired")
      if (error._tag === "ConsentRequired") expect(error.reason).toBe("refused_without_error")
      const warned = lines.filter((l) => l.annotations.outcome === "refused_without_error")
      expect(warned).toHaveLength(1)
      expect(warned[0]?.annotations).toMatchObject({ status: 401, contentType: "text/html; charset=utf-8" })
      expect(String(warned[0]?.annotations.body)).toMatch(/^<html><body>Access denied /)
      expect(JSON.stringify(lines)).not.toContain("c2VjcmV0LXRoYXQtbXVzdC1ub3QtbGVhaw")
    }).pipe(Effect.provide(Layer.merge(brokerLayer(dev.idp), capturing(lines))))
  })

  it.live("control: a bare 500 is no refusal: the grant stays active", () =>
    Effect.gen(function* () {
      const alice = user(dev.idp)
      const { broker, ref } = yield* connected(dev.idp, alice)
      yield* dropCurrent(alice.sub)
      dev.idp.faults.inject({ kind: "bare_status", status: 500, grantType: "refresh_token" })
      const error = yield* Effect.flip(broker.backgroundToken(ref))
      expect(error._tag).toBe("UpstreamUnavailable")
      const status = Option.getOrThrow(yield* broker.grantStatus(ref))
      expect(status.status).toBe("active")
    }).pipe(Effect.provide(brokerLayer(dev.idp)))
  )

  it.live("control: a 400 with an OAuth invalid_grant body keeps its own reason", () =>
    Effect.gen(function* () {
      const alice = user(dev.idp)
      const { broker, ref } = yield* connected(dev.idp, alice)
      yield* dropCurrent(alice.sub)
      dev.idp.faults.inject({ kind: "invalid_grant", grantType: "refresh_token" })
      const error = yield* Effect.flip(broker.backgroundToken(ref))
      if (error._tag !== "ConsentRequired") throw new Error(`expected ConsentRequired, got ${error._tag}`)
      expect(error.reason).toBe("invalid_grant")
    }).pipe(Effect.provide(Layer.merge(brokerLayer(dev.idp), Logger.minimumLogLevel(LogLevel.Info))))
  )
})
