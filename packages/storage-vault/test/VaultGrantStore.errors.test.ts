import { execFileSync } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { type GrantKey, GrantStore, type StorageUnavailable } from "@token-broker/core"
import { fullRecord } from "@token-broker/core/testing"
import { type Context, Duration, Effect, Option } from "effect"
import { afterAll } from "vitest"
import { VaultError, type VaultErrorReason, VaultGrantStore } from "../src/index.js"
import { startVaultEmulator } from "../src/testing/index.js"
import { storePolicy } from "./support.js"

const emulator = await startVaultEmulator({ namespaces: ["team-a"] })
afterAll(() => emulator.close())

let n = 0
const freshKey = (): GrantKey => ({
  tenant: `errors-${Date.now()}-${n++}`,
  subject: "alice",
  provider: "nextcloud"
})

type Store = Context.Tag.Service<GrantStore.GrantStore>
const withStore = <A, E>(
  options: VaultGrantStore.VaultGrantStoreOptions,
  use: (store: Store) => Effect.Effect<A, E>
) => Effect.flatMap(GrantStore.GrantStore, use).pipe(Effect.provide(VaultGrantStore.layer(options)))

const base = (token = emulator.rootToken): VaultGrantStore.VaultGrantStoreOptions => ({
  address: emulator.address,
  auth: { token },
  retries: 0
})

/** The failure of `effect`: a StorageUnavailable whose cause is a VaultError with `reason`. */
const expectReason = (error: StorageUnavailable, reason: VaultErrorReason) => {
  expect(error._tag).toBe("StorageUnavailable")
  expect(error.cause).toBeInstanceOf(VaultError)
  expect((error.cause as VaultError).reason).toBe(reason)
  return error
}

describe("VaultGrantStore errors", () => {
  it.live("sealed Vault: every operation fails with reason sealed; nothing is lost once unsealed", () =>
    withStore(base(), (store) =>
      Effect.gen(function* () {
        const record = fullRecord(freshKey())
        yield* store.insert(record)
        emulator.seal()
        const error = yield* Effect.flip(store.get(record)).pipe(
          Effect.ensuring(Effect.sync(emulator.unseal))
        )
        expectReason(error, "sealed")
        expect(error.message).toMatch(/sealed/)
        expect(yield* store.get(record)).toEqual(Option.some(record))
      })
    )
  )

  it.live(
    "sealed during a write: retries carry it through once Vault is unsealed, without a second version",
    () =>
      withStore({ ...base(), retries: 4 }, (store) =>
        Effect.gen(function* () {
          const record = fullRecord(freshKey())
          yield* store.insert(record)
          emulator.seal()
          setTimeout(() => emulator.unseal(), 250)
          const next = { ...record, version: 2, lastErrorCode: null }
          expect(yield* store.compareAndSet(record, 1, next)).toBe("ok")
          expect(yield* store.get(record)).toEqual(Option.some(next))
        })
      )
  )

  it.live("a 403 names the path and is permission_denied; the token is never in the error", () =>
    Effect.gen(function* () {
      const token = emulator.createToken({
        policy: [{ path: "secret/*", capabilities: ["read", "list"] }]
      })
      const error = yield* Effect.flip(
        withStore(base(token), (store) => store.insert(fullRecord(freshKey())))
      )
      expectReason(error, "permission_denied")
      expect(error.message).toContain("secret/data/token-broker/grants/")
      expect(JSON.stringify(error)).not.toContain(token)
      expect(String(error.cause)).not.toContain(token)
    })
  )

  it.live("a missing mount fails the layer with mount_missing", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(
        withStore({ ...base(), mount: "no-such-mount" }, (s) => s.get(freshKey()))
      )
      expectReason(error, "mount_missing")
      expect(error.message).toMatch(/no-such-mount/)
    })
  )

  it.live("an expired token gives token_expired, distinct from permission_denied", () =>
    Effect.gen(function* () {
      const token = emulator.createToken({ policy: storePolicy(), ttl: 1, renewable: false })
      yield* withStore(base(token), (store) =>
        Effect.gen(function* () {
          expect(Option.isNone(yield* store.get(freshKey()))).toBe(true)
          yield* Effect.sleep(Duration.millis(1_200))
          expectReason(yield* Effect.flip(store.get(freshKey())), "token_expired")
        })
      )
      const revoked = emulator.createToken({ policy: storePolicy() })
      emulator.revokeToken(revoked)
      expectReason(yield* Effect.flip(withStore(base(revoked), (s) => s.get(freshKey()))), "token_expired")
    })
  )

  it.live("a renewable token with a short TTL is renewed before it expires", () =>
    Effect.gen(function* () {
      const token = emulator.createToken({ policy: storePolicy(), ttl: 1, renewable: true })
      const before = emulator.requests.filter((r) => r.path === "auth/token/renew-self").length
      yield* withStore(base(token), (store) =>
        Effect.gen(function* () {
          for (let i = 0; i < 6; i++) {
            yield* Effect.sleep(Duration.millis(400))
            expect(Option.isNone(yield* store.get(freshKey()))).toBe(true)
          }
        })
      )
      expect(
        emulator.requests.filter((r) => r.path === "auth/token/renew-self").length - before
      ).toBeGreaterThan(1)
    })
  )

  it.live("AppRole: logs in, and logs in again when its token reaches its max TTL", () =>
    Effect.gen(function* () {
      const role = emulator.createAppRole(`broker-${n++}`, {
        policy: storePolicy(),
        tokenTtl: 1,
        tokenMaxTtl: 2
      })
      const logins = () => emulator.requests.filter((r) => r.path === "auth/approle/login").length
      const before = logins()
      yield* withStore({ ...base(), auth: { appRole: role } }, (store) =>
        Effect.gen(function* () {
          const record = fullRecord(freshKey())
          yield* store.insert(record)
          for (let i = 0; i < 8; i++) {
            yield* Effect.sleep(Duration.millis(400))
            expect(yield* store.get(record)).toEqual(Option.some(record))
          }
        })
      )
      expect(logins() - before).toBeGreaterThanOrEqual(2)
      const wrong = yield* Effect.flip(
        withStore({ ...base(), auth: { appRole: { roleId: role.roleId, secretId: "wrong" } } }, (s) =>
          s.get(freshKey())
        )
      )
      expectReason(wrong, "permission_denied")
      expect(wrong.message).toMatch(/AppRole/)
    })
  )

  it.live("a namespace is sent as X-Vault-Namespace and isolates the data", () =>
    Effect.gen(function* () {
      const record = fullRecord(freshKey())
      const from = emulator.requests.length
      yield* withStore({ ...base(), namespace: "team-a" }, (store) => store.insert(record))
      expect(emulator.requests.slice(from).every((r) => r.namespace === "team-a")).toBe(true)
      expect(Option.isNone(yield* withStore(base(), (store) => store.get(record)))).toBe(true)
      expect(yield* withStore({ ...base(), namespace: "team-a" }, (store) => store.get(record))).toEqual(
        Option.some(record)
      )
      expectReason(
        yield* Effect.flip(withStore({ ...base(), namespace: "no-such-ns" }, (s) => s.get(record))),
        "mount_missing"
      )
    })
  )

  it.live("a slow Vault times out with reason timeout", () =>
    withStore({ ...base(), timeout: Duration.millis(150) }, (store) =>
      Effect.gen(function* () {
        emulator.setLatency(400)
        const error = yield* Effect.flip(store.get(freshKey())).pipe(
          Effect.ensuring(Effect.sync(() => emulator.setLatency(0)))
        )
        expectReason(error, "timeout")
      })
    )
  )

  it.live("Vault down, then back: unavailable meanwhile, every record intact afterwards", () =>
    withStore(base(), (store) =>
      Effect.gen(function* () {
        const record = fullRecord(freshKey())
        yield* store.insert(record)
        yield* Effect.promise(() => emulator.stop())
        const error = yield* Effect.flip(store.get(record)).pipe(
          Effect.ensuring(Effect.promise(() => emulator.restart()))
        )
        expectReason(error, "unavailable")
        expect(error.message).toContain(emulator.address)
        expect(yield* store.get(record)).toEqual(Option.some(record))
      })
    )
  )
})

describe("VaultGrantStore over TLS with a custom CA", () => {
  const dir = mkdtempSync(join(tmpdir(), "tb-vault-tls-"))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))
  execFileSync(
    "openssl",
    ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1"].concat([
      "-addext",
      "subjectAltName=IP:127.0.0.1",
      "-keyout",
      join(dir, "key.pem"),
      "-out",
      join(dir, "cert.pem")
    ]),
    { stdio: "ignore" }
  )
  const cert = readFileSync(join(dir, "cert.pem"), "utf8")
  const key = readFileSync(join(dir, "key.pem"), "utf8")

  it.live("trusts Vault's certificate only through the configured CA", () =>
    Effect.gen(function* () {
      const tls = yield* Effect.acquireRelease(
        Effect.promise(() => startVaultEmulator({ tls: { key, cert } })),
        (e) => Effect.promise(() => e.close())
      )
      expect(tls.address.startsWith("https://")).toBe(true)
      const options = { address: tls.address, auth: { token: tls.rootToken }, retries: 0 }
      const record = fullRecord(freshKey())
      yield* withStore({ ...options, caCert: cert }, (store) => store.insert(record))
      expect(yield* withStore({ ...options, caCert: cert }, (store) => store.get(record))).toEqual(
        Option.some(record)
      )
      expectReason(yield* Effect.flip(withStore(options, (store) => store.get(record))), "unavailable")
    }).pipe(Effect.scoped)
  )
})
