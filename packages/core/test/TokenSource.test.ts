import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Option, Redacted } from "effect"
import { TokenSource } from "../src/index.js"
import { brokerLayer, connect, PROVIDER, useDevIdp, user } from "./support/harness.js"

const dev = useDevIdp()

const sourceLayer = () => TokenSource.layerFromBroker.pipe(Layer.provideMerge(brokerLayer(dev.idp)))

describe("TokenSource.layerFromBroker: the in-process broker behind the TokenSource tag", () => {
  it.live("consent, status, background token and revoke go through to the broker", () =>
    Effect.gen(function* () {
      const source = yield* TokenSource.TokenSource
      const alice = user(dev.idp)
      const ref = { subject: alice.sub, provider: PROVIDER }

      const before = yield* Effect.flip(source.backgroundToken(ref))
      expect(before._tag).toBe("ConsentRequired")
      expect(Option.isNone(yield* source.grantStatus(ref))).toBe(true)

      const started = yield* source.startAuthorization(ref)
      expect(started.authorizationUrl.origin).toBe(dev.idp.issuer)
      expect(started.expiresAt).toBeGreaterThan(Date.now())
      // The started consent exposes no state secret beyond the URL itself.
      expect(Object.keys(started).sort()).toEqual(["authorizationUrl", "expiresAt"])

      yield* connect(dev.idp, alice)
      const status = yield* source.grantStatus(ref)
      expect(Option.map(status, (g) => g.status)).toEqual(Option.some("active"))

      const token = yield* source.backgroundToken({ ...ref, scopes: ["notes:read"] })
      expect(Redacted.value(token.accessToken).length).toBeGreaterThan(20)
      expect(token.scopes).toEqual(["notes:read"])

      // A token the upstream refused is dropped: the next one is refreshed.
      const reported = yield* source.reportRejected({ ...ref, accessToken: token.accessToken })
      expect(Option.map(reported, (g) => g.status)).toEqual(Option.some("active"))
      const fresh = yield* source.backgroundToken({ ...ref, scopes: ["notes:read"] })
      expect(Redacted.value(fresh.accessToken)).not.toBe(Redacted.value(token.accessToken))

      const revoked = yield* source.revoke(ref)
      expect(revoked).toMatchObject({ removed: true, upstream: "revoked" })
      const after = yield* Effect.flip(source.backgroundToken(ref))
      expect(after._tag).toBe("ConsentRequired")
    }).pipe(Effect.provide(sourceLayer()))
  )

  it.live("session tokens fail with the broker's own typed errors", () =>
    Effect.gen(function* () {
      const source = yield* TokenSource.TokenSource
      const error = yield* Effect.flip(
        source.sessionToken({ subjectToken: Redacted.make("not-a-token"), provider: PROVIDER })
      )
      expect(error._tag).toBe("InvalidSubjectToken")
      const unknown = yield* Effect.flip(source.backgroundToken({ subject: "s", provider: "nope" }))
      expect(unknown._tag).toBe("ProviderNotFound")
    }).pipe(Effect.provide(sourceLayer()))
  )
})
