import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect, Redacted } from "effect"
import { TokenBroker } from "../src/index.js"
import { brokerLayer, connect, PROVIDER, user, withDevIdp } from "./support/harness.js"

const dev = withDevIdp()
beforeAll(dev.start)
afterAll(dev.stop)

/** An empty scope list is a mistake of the caller, never "no downscope" (issue 14.1). */
describe("scope lists", () => {
  it.effect("backgroundToken refuses scopes: [] with InvalidRequest naming the field", () =>
    Effect.gen(function* () {
      const bob = user(dev.idp, 1)
      yield* connect(dev.idp, bob)
      const broker = yield* TokenBroker.TokenBroker
      // a token for the grant's own scopes is in the cache now: [] must not reach it either
      const full = yield* broker.backgroundToken({ subject: bob.sub, provider: PROVIDER })
      expect(full.scopes).toEqual(expect.arrayContaining(["notes:read", "notes:write"]))
      const error = yield* Effect.flip(
        broker.backgroundToken({ subject: bob.sub, provider: PROVIDER, scopes: [] })
      )
      expect(error).toMatchObject({ _tag: "InvalidRequest", code: "invalid_request", field: "scopes" })
      expect(error.message).toMatch(/at least one scope/)
      expect(broker.cachedToken({ subject: bob.sub, provider: PROVIDER, scopes: [] })).toBeUndefined()
    }).pipe(Effect.provide(brokerLayer(dev.idp)))
  )

  it.effect("startAuthorization refuses scopes: []", () =>
    Effect.gen(function* () {
      const broker = yield* TokenBroker.TokenBroker
      const error = yield* Effect.flip(
        broker.startAuthorization({ subject: user(dev.idp).sub, provider: PROVIDER, scopes: [] })
      )
      expect(error).toMatchObject({ _tag: "InvalidRequest", field: "scopes" })
    }).pipe(Effect.provide(brokerLayer(dev.idp)))
  )

  it.effect("sessionToken refuses scopes: [] (leave scopes out for the subject token's own)", () =>
    Effect.gen(function* () {
      const broker = yield* TokenBroker.TokenBroker
      const error = yield* Effect.flip(
        broker.sessionToken({
          subjectToken: Redacted.make("not-checked-yet"),
          provider: PROVIDER,
          scopes: []
        })
      )
      expect(error).toMatchObject({ _tag: "InvalidRequest", field: "scopes" })
    }).pipe(Effect.provide(brokerLayer(dev.idp)))
  )
})
