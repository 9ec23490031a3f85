/**
 * The secrets a store holds, decrypted with its key ring, for the secret scan: what a broker keeps
 * encrypted at rest is exactly what its logs must never show. Run on the store and key ring the
 * suite's broker uses (a second connection to its SQLite file or PostgreSQL schema).
 */
import { createHash } from "node:crypto"
import {
  type DecryptionFailed,
  type GrantRecord,
  GrantStore,
  KeyRing,
  type PendingAuthorization,
  type StorageUnavailable
} from "@token-broker/core"
import { Effect, Option, Redacted } from "effect"
import type { KnownSecret } from "./SecretScan.js"

type Needs = GrantStore.GrantStore | KeyRing.KeyRing

const PAGE = 100

/**
 * Every stored grant's refresh token and shared access tokens (the current one and those kept per
 * scope set), labelled by subject, provider and version.
 */
export const storedGrantSecrets: Effect.Effect<
  ReadonlyArray<KnownSecret>,
  StorageUnavailable | DecryptionFailed,
  Needs
> = Effect.gen(function* () {
  const store = yield* GrantStore.GrantStore
  const ring = yield* KeyRing.KeyRing
  const secrets: Array<KnownSecret> = []
  const open = (envelope: string, record: GrantRecord, field: string) =>
    Effect.map(ring.decrypt(envelope, KeyRing.aadFor(record, field)), Redacted.value)
  let after: GrantRecord | null = null
  for (;;) {
    const page: ReadonlyArray<GrantRecord> = yield* store.list({}, after, PAGE)
    for (const record of page) {
      const who = `${record.subject}/${record.provider} v${record.version}`
      secrets.push({
        label: `refresh token of ${who}`,
        value: yield* open(record.refreshToken, record, "refresh_token")
      })
      const shared =
        record.accessToken === null ? [] : [record.accessToken, ...(record.scopedAccessTokens ?? [])]
      for (const token of shared) {
        secrets.push({
          label: `stored access token of ${who}`,
          value: yield* open(token.envelope, record, "access_token")
        })
      }
    }
    if (page.length < PAGE) return secrets
    after = page[page.length - 1] ?? null
  }
})

/**
 * The PKCE code verifier and the nonce of the consent pending under `state` (the `state` parameter of
 * its authorization URL). The store has no read that leaves a pending record in place, so it is taken
 * and put back unchanged; call it before the consent's callback arrives. The fields are bound to the
 * record with the AAD core's TokenBroker writes (`["token-broker/v1/pending", stateHash, field]`): were
 * that to change, this fails with DecryptionFailed, never silently.
 */
export const pendingConsentSecrets = (
  state: string
): Effect.Effect<ReadonlyArray<KnownSecret>, StorageUnavailable | DecryptionFailed | Error, Needs> =>
  Effect.gen(function* () {
    const store = yield* GrantStore.GrantStore
    const ring = yield* KeyRing.KeyRing
    const stateHash = createHash("sha256").update(state, "utf8").digest("base64url")
    const taken: Option.Option<PendingAuthorization> = yield* store.takePending(stateHash)
    if (Option.isNone(taken)) return yield* Effect.fail(new Error("no consent is pending under this state"))
    const pending = taken.value
    yield* store.putPending(stateHash, pending)
    const open = (envelope: string, field: string) =>
      Effect.map(
        ring.decrypt(envelope, JSON.stringify(["token-broker/v1/pending", stateHash, field])),
        Redacted.value
      )
    const who = `${pending.subject}/${pending.provider}`
    return [
      { label: `PKCE code verifier of ${who}`, value: yield* open(pending.codeVerifier, "code_verifier") },
      { label: `nonce of ${who}`, value: yield* open(pending.nonce, "nonce") }
    ]
  })
