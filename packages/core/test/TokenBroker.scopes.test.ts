import { describe, expect, it } from "@effect/vitest"
import { Effect, Redacted } from "effect"
import { TokenBroker } from "../src/index.js"
import { brokerLayer, connected, PROVIDER, useDevIdp, user } from "./support/harness.js"

const dev = useDevIdp()

/** An empty scope list is a mistake of the caller, never "no downscope" (issue 14.1). */
describe("scope lists", () => {
  it.effect("backgroundToken refuses scopes: [] with InvalidRequest naming the field", () =>
    Effect.gen(function* () {
      const { broker, ref } = yield* connected(dev.idp, user(dev.idp, 1))
      // a token for the grant's own scopes is in the cache now: [] must not reach it either
      const full = yield* broker.backgroundToken(ref)
      expect(full.scopes).toEqual(expect.arrayContaining(["notes:read", "notes:write"]))
      const error = yield* Effect.flip(broker.backgroundToken({ ...ref, scopes: [] }))
      expect(error).toMatchObject({ _tag: "InvalidRequest", code: "invalid_request", field: "scopes" })
      expect(error.message).toMatch(/at least one scope/)
      expect(broker.cachedToken({ ...ref, scopes: [] })).toBeUndefined()
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
