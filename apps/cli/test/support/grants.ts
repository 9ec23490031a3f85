import { loadConfig, storeLayer } from "@token-broker/config"
import { type GrantKey, type GrantRecord, GrantStore, KeyRing } from "@token-broker/core"
import { minimalRecord } from "@token-broker/core/testing"
import { Context, Effect, Layer, Redacted } from "effect"
import { expect } from "vitest"
import type { Backend } from "./backends.js"

export const env = (backend: Backend) => ({ ...backend.env, TB_TEST_CLIENT_SECRET: "unused-in-these-tests" })

/** Grants written straight through the store layer under the old key (no provider involved). */
export const seed = (configPath: string, backend: Backend, oldKey: KeyRing.LocalKey, count: number) =>
  Effect.runPromise(
    Effect.gen(function* () {
      const config = yield* loadConfig({ path: configPath, env: env(backend) })
      const ring = yield* KeyRing.makeLocal({ keys: [oldKey] })
      const now = Date.now()
      const store = Context.get(yield* Layer.build(storeLayer(config.storage)), GrantStore.GrantStore)
      yield* Effect.forEach(
        Array.from({ length: count }, (_, i) => i),
        (i) =>
          Effect.gen(function* () {
            const key: GrantKey = {
              tenant: "default",
              subject: `user-${String(i).padStart(5, "0")}`,
              provider: "dev-idp"
            }
            const record = minimalRecord(key, {
              refreshToken: yield* ring.encrypt(
                Redacted.make(`rt-${i}`),
                KeyRing.aadFor(key, "refresh_token")
              ),
              accessToken: {
                envelope: yield* ring.encrypt(Redacted.make(`at-${i}`), KeyRing.aadFor(key, "access_token")),
                expiresAt: now + 300_000,
                scopes: ["notes:read"],
                audience: null
              },
              scopes: ["notes:read"],
              createdAt: now,
              updatedAt: now,
              lastRefreshedAt: now
            })
            expect(yield* store.insert(record)).toBe("ok")
          }),
        { concurrency: backend.name === "postgres" ? 16 : 1, discard: true }
      )
    }).pipe(Effect.scoped)
  )

/** Every stored grant, decrypted with only `key`: how many, how many failed, how many under each kid. */
export const inspect = (configPath: string, backend: Backend, onlyKey: KeyRing.LocalKey) =>
  Effect.runPromise(
    Effect.gen(function* () {
      const config = yield* loadConfig({ path: configPath, env: env(backend) })
      const ring = yield* KeyRing.makeLocal({ keys: [onlyKey] })
      return yield* Effect.gen(function* () {
        const store = yield* GrantStore.GrantStore
        let after: GrantKey | null = null
        let total = 0
        let decrypted = 0
        let mismatched = 0
        while (true) {
          const page: ReadonlyArray<GrantRecord> = yield* store.list({}, after, 1000)
          for (const record of page) {
            total += 1
            const rt = yield* Effect.either(
              ring.decrypt(record.refreshToken, KeyRing.aadFor(record, "refresh_token"))
            )
            const at = yield* Effect.either(
              ring.decrypt(record.accessToken?.envelope ?? "", KeyRing.aadFor(record, "access_token"))
            )
            if (rt._tag === "Right" && at._tag === "Right") {
              decrypted += 1
              const n = Number(record.subject.slice("user-".length))
              if (Redacted.value(rt.right) !== `rt-${n}` || Redacted.value(at.right) !== `at-${n}`)
                mismatched += 1
            }
          }
          const last = page[page.length - 1]
          if (page.length < 1000 || last === undefined) break
          after = last
        }
        return { total, decrypted, mismatched }
      }).pipe(Effect.provide(storeLayer(config.storage)))
    })
  )

export const decode = (kid: string, material: string) =>
  Effect.runSync(KeyRing.decodeKey(kid, Redacted.make(material)))
