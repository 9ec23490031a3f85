import { Clock, Duration, Effect, Either, Option, Redacted } from "effect"
import type { ProviderClient, TokenSet } from "../AuthorizationServer.js"
import {
  AuthorizationNotPending,
  type DecryptionFailed,
  StorageUnavailable,
  UpstreamRejected
} from "../Errors.js"
import { type GrantKey, type GrantRecord, grantKeyString, newGrantRecord } from "../Grant.js"
import { aadFor } from "../KeyRing.js"
import { expectsIdToken, offlineScopeOf, type ProviderConfig } from "../Provider.js"
import * as Scopes from "../Scopes.js"
import type { TokenBrokerService } from "../TokenBroker.js"
import type { BrokerContext } from "./brokerContext.js"
import { checkBinding, consentedIdentity, discardIssued } from "./consentIdentity.js"
import { toGrantInfo } from "./grantInfo.js"
import { randomToken, s256, sha256 } from "./random.js"
import { revokeAtProvider } from "./revokeUpstream.js"
import { logUpstreamFailure } from "./upstreamLog.js"

/** What a consent asks beside the requested scopes: `openid` where an ID token comes back, the offline scope. */
const consentScopes = (provider: ProviderConfig): ReadonlyArray<string> => {
  const offline = offlineScopeOf(provider)
  return [...(expectsIdToken(provider) ? ["openid"] : []), ...(offline === null ? [] : [offline])]
}

/** The AAD of a pending consent's encrypted fields: bound to its state, so envelopes cannot be swapped. */
const pendingAad = (stateHash: string, field: string) =>
  JSON.stringify(["token-broker/v1/pending", stateHash, field])

/**
 * Consent (authorization code with PKCE): the authorization URL and its pending record, then the callback
 * that exchanges the code, checks who consented and stores the grant.
 */
export const makeConsentFlow = (ctx: BrokerContext) => {
  const { store, keyRing, servers, cache, pendingTtlMs, keyOf } = ctx

  const startAuthorization: TokenBrokerService["startAuthorization"] = (request) =>
    Effect.gen(function* () {
      const key = yield* keyOf(request)
      const client = yield* servers.get(key.provider)
      const asked =
        request.scopes === undefined
          ? yield* Scopes.validate(client.config.defaultScopes, "scopes")
          : yield* Scopes.requested(request.scopes, "scopes")
      const scopes = Scopes.normalize([...asked, ...consentScopes(client.config)])
      const state = randomToken(32)
      const nonce = randomToken(32)
      const verifierText = randomToken(48)
      const stateHash = sha256(state)
      const now = yield* Clock.currentTimeMillis
      const expiresAt = now + pendingTtlMs
      const url = yield* client.authorizationUrl({
        state,
        nonce,
        codeChallenge: s256(verifierText),
        scopes,
        redirectUri: client.config.redirectUri,
        resource: client.config.resource,
        // oidc-provider and others drop offline access unless consent is asked again
        ...(client.config.offlineAccessScope === null ? {} : { prompt: "consent" })
      })
      yield* store.putPending(stateHash, {
        ...key,
        scopes,
        redirectUri: client.config.redirectUri,
        returnTo: request.returnTo ?? null,
        codeVerifier: yield* keyRing.encrypt(
          Redacted.make(verifierText),
          pendingAad(stateHash, "code_verifier")
        ),
        nonce: yield* keyRing.encrypt(Redacted.make(nonce), pendingAad(stateHash, "nonce")),
        createdAt: now,
        expiresAt
      })
      return { authorizationUrl: url, state: Redacted.make(state), expiresAt }
    }).pipe(Effect.withSpan("TokenBroker.startAuthorization", { attributes: { provider: request.provider } }))

  const completeAuthorization: TokenBrokerService["completeAuthorization"] = (callback) =>
    Effect.gen(function* () {
      const params =
        callback instanceof URL
          ? callback.searchParams
          : callback instanceof URLSearchParams
            ? callback
            : new URLSearchParams(callback as Record<string, string>)
      const state = params.get("state")
      if (state === null || state.length === 0) {
        return yield* new AuthorizationNotPending({ message: "The callback carries no state parameter" })
      }
      const stateHash = sha256(state)
      const found = yield* store.takePending(stateHash)
      if (Option.isNone(found)) {
        return yield* new AuthorizationNotPending({
          message: "This consent is unknown, was already completed, or expired; start it again"
        })
      }
      const pending = found.value
      const key: GrantKey = { tenant: pending.tenant, subject: pending.subject, provider: pending.provider }
      const client = yield* servers.get(pending.provider)
      const upstreamError = params.get("error")
      if (upstreamError !== null) {
        // An error answer does not use up the consent: it stays pending until it expires, so the user
        // can go back and allow, and a link carrying an error cannot cancel a consent in progress.
        yield* store.putPending(stateHash, pending)
        return yield* new UpstreamRejected({
          provider: pending.provider,
          error: upstreamError,
          errorDescription: params.get("error_description") ?? undefined,
          message: `Provider "${pending.provider}" did not grant consent: ${upstreamError}`
        })
      }
      // A consent started under a key retired since (keys rotate, then retire, within pendingTtl) can
      // never be finished: the user is asked to start it again, not shown a server error.
      const retiredKey = (
        error: DecryptionFailed
      ): Effect.Effect<never, DecryptionFailed | AuthorizationNotPending> =>
        error.reason === "unknown_key"
          ? Effect.fail(
              new AuthorizationNotPending({
                message:
                  "This consent was started under an encryption key that has been retired since; start it again"
              })
            )
          : Effect.fail(error)
      const codeVerifier = yield* keyRing
        .decrypt(pending.codeVerifier, pendingAad(stateHash, "code_verifier"))
        .pipe(Effect.catchTag("DecryptionFailed", retiredKey))
      const nonce = yield* keyRing
        .decrypt(pending.nonce, pendingAad(stateHash, "nonce"))
        .pipe(Effect.catchTag("DecryptionFailed", retiredKey))
      const callbackUrl = new URL(pending.redirectUri)
      for (const [name, value] of params) callbackUrl.searchParams.set(name, value)
      const set = yield* client
        .exchangeCode({
          callbackUrl,
          expectedState: state,
          codeVerifier,
          nonce: Redacted.value(nonce),
          redirectUri: pending.redirectUri,
          resource: client.config.resource
        })
        .pipe(
          Effect.tapError((e) =>
            logUpstreamFailure(
              "code exchange",
              {
                provider: pending.provider,
                grant: grantKeyString({
                  tenant: pending.tenant,
                  subject: pending.subject,
                  provider: pending.provider
                })
              },
              e
            )
          ),
          Effect.catchTag("InvalidGrant", (e) =>
            Effect.fail(
              new UpstreamRejected({
                provider: pending.provider,
                error: "invalid_grant",
                errorDescription: e.errorDescription,
                message: `Provider "${pending.provider}" refused the authorization code`
              })
            )
          )
        )
      // Whatever refuses the consent from here on first revokes what the provider just issued.
      const refuse = <E extends { readonly message: string }>(error: E) =>
        Effect.flatMap(discardIssued(client, set), (outcome) =>
          Effect.fail(Object.assign(error, { message: `${error.message}; ${outcome}` }))
        )
      const consented = yield* consentedIdentity(client, set).pipe(Effect.catchAll(refuse))
      yield* checkBinding(client, pending.subject, consented).pipe(Effect.catchAll(refuse))
      const identity = consented === null ? null : { issuer: consented.issuer, subject: consented.subject }
      if (set.refreshToken === null) {
        return yield* refuse(
          new UpstreamRejected({
            provider: pending.provider,
            error: "no_refresh_token",
            message: `Provider "${pending.provider}" issued no refresh token; ${
              client.config.offlineAccessScope === null
                ? "it issues none to this client (check the app's refresh-token setting at the provider)"
                : `${client.config.offlineAccessScope ?? "offline_access"} was not granted`
            }`
          })
        )
      }
      const now = yield* Clock.currentTimeMillis
      const grantedScopes = set.scopes ?? pending.scopes
      const fresh = newGrantRecord(
        {
          ...key,
          refreshToken: yield* keyRing.encrypt(set.refreshToken, aadFor(key, "refresh_token")),
          accessToken: {
            envelope: yield* keyRing.encrypt(set.accessToken, aadFor(key, "access_token")),
            expiresAt: set.expiresAt ?? now + 5 * 60_000,
            scopes: grantedScopes,
            audience: client.config.resource ?? null
          },
          scopes: grantedScopes,
          refreshTokenExpiresAt:
            set.refreshExpiresAt ??
            (client.config.refreshTokenLifetime === undefined
              ? null
              : now + Duration.toMillis(client.config.refreshTokenLifetime)),
          identity
        },
        now
      )
      const writes = { inDoubt: false }
      const { stored, replaced } = yield* storeGrant(key, fresh, now, writes).pipe(
        Effect.catchAll((error) => unstored(key, client, set, error, writes.inDoubt))
      )
      yield* cache.invalidateGrant(grantKeyString(key))
      if (Option.isSome(replaced)) yield* retireReplaced(key, client, replaced.value, set.refreshToken)
      return { grant: toGrantInfo(stored), returnTo: pending.returnTo }
    }).pipe(Effect.withSpan("TokenBroker.completeAuthorization"))

  /**
   * Inserts a new grant, or replaces the stored one under compare-and-set (new version); the replaced
   * record comes back beside the stored one. `writes.inDoubt` tells a failure whether a write of the
   * new grant was sent that did not answer "conflict" (it may have landed).
   */
  const storeGrant = (
    key: GrantKey,
    fresh: Omit<GrantRecord, "version" | "createdAt">,
    now: number,
    writes: { inDoubt: boolean }
  ): Effect.Effect<
    { readonly stored: GrantRecord; readonly replaced: Option.Option<GrantRecord> },
    StorageUnavailable
  > =>
    Effect.gen(function* () {
      while (true) {
        const existing = yield* store.get(key)
        if (Option.isNone(existing)) {
          const record: GrantRecord = { ...fresh, version: 1, createdAt: now }
          writes.inDoubt = true
          if ((yield* store.insert(record)) !== "ok") {
            writes.inDoubt = false
            continue
          }
          // a key that held a grant before is stored above its old versions: learn the one written
          // (none: revoked meanwhile; the record is what was written, not resurrected)
          return {
            stored: Option.getOrElse(yield* store.get(key), () => record),
            replaced: Option.none<GrantRecord>()
          }
        }
        const record: GrantRecord = {
          ...fresh,
          version: existing.value.version + 1,
          createdAt: existing.value.createdAt
        }
        writes.inDoubt = true
        if ((yield* store.compareAndSet(key, existing.value.version, record)) === "ok") {
          return { stored: record, replaced: Option.some(existing.value) }
        }
        writes.inDoubt = false
      }
    })

  /** Whether the stored grant holds this refresh token (false when it is absent or does not decrypt). */
  const holds = (key: GrantKey, token: Redacted.Redacted<string>) =>
    Effect.flatMap(store.get(key), (found) =>
      Option.isNone(found)
        ? Effect.succeed(false)
        : keyRing.decrypt(found.value.refreshToken, aadFor(key, "refresh_token")).pipe(
            Effect.map((stored) => Redacted.value(stored) === Redacted.value(token)),
            Effect.orElseSucceed(() => false)
          )
    )

  /**
   * The new grant could not be stored. When no write of it was sent (the store failed before), or the
   * store answers that it does not hold the new refresh token, nothing holds it: what the provider
   * issued is revoked, and the error says so. When a write may have landed and the store cannot tell,
   * nothing is revoked: a stored grant is never killed by a failure.
   */
  const unstored = (
    key: GrantKey,
    client: ProviderClient,
    set: TokenSet,
    error: StorageUnavailable,
    writeInDoubt: boolean
  ) =>
    Effect.gen(function* () {
      const refreshToken = set.refreshToken
      const landed =
        !writeInDoubt || refreshToken === null
          ? Either.right(false)
          : yield* Effect.either(holds(key, refreshToken))
      if (Either.isLeft(landed) || landed.right) return yield* Effect.fail(error)
      const outcome = yield* discardIssued(client, set)
      return yield* Effect.fail(
        new StorageUnavailable({
          operation: error.operation,
          message: `${error.message}; the new grant was not stored, and ${outcome}`
        })
      )
    })

  /** `replacedGrants`: the active grant a consent replaced is revoked at the provider (never failing the consent). */
  const retireReplaced = (
    key: GrantKey,
    client: ProviderClient,
    replaced: GrantRecord,
    newRefreshToken: Redacted.Redacted<string> | null
  ) =>
    Effect.gen(function* () {
      if (replaced.status !== "active" || (client.config.replacedGrants ?? "revoke") === "keep") return
      const old = yield* Effect.option(keyRing.decrypt(replaced.refreshToken, aadFor(key, "refresh_token")))
      // a provider that answered the same refresh token again: it is the new grant's too
      if (
        Option.isSome(old) &&
        newRefreshToken !== null &&
        Redacted.value(old.value) === Redacted.value(newRefreshToken)
      ) {
        return
      }
      const outcome = yield* revokeAtProvider({ servers, keyRing }, key, replaced)
      yield* Effect.logInfo(
        "a consent replaced an active grant; the replaced grant was revoked at the provider"
      ).pipe(
        Effect.annotateLogs({
          grant: grantKeyString(key),
          provider: key.provider,
          upstream: outcome.upstream,
          accessTokens: outcome.accessTokens
        })
      )
    })

  return { startAuthorization, completeAuthorization }
}
