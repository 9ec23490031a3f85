import { Clock, Effect } from "effect"
import type { AuthorizationServersService } from "../AuthorizationServer.js"
import type {
  DecryptionFailed,
  StorageUnavailable,
  UpstreamRejected,
  UpstreamUnavailable
} from "../Errors.js"
import { type GrantKey, type GrantRecord, grantKeyString } from "../Grant.js"
import { aadFor, type KeyRingService } from "../KeyRing.js"
import type { RevokeResult } from "../TokenBroker.js"
import { sharedTokensOf } from "./sharedTokens.js"
import { logUpstreamFailure } from "./upstreamLog.js"

type Failure = DecryptionFailed | StorageUnavailable | UpstreamUnavailable | UpstreamRejected

const codeOf = (error: Failure): string =>
  error._tag === "UpstreamRejected"
    ? error.error
    : error._tag === "UpstreamUnavailable"
      ? error.reason
      : error.code

/** The provider answered that it does not revoke this kind of token (RFC 7009 `unsupported_token_type`), or has no endpoint. */
const isUnsupported = (error: Failure) =>
  error._tag === "UpstreamRejected" &&
  (error.error === "unsupported_token_type" || error.error === "revocation_not_supported")

/**
 * RFC 7009 at the provider for a grant being revoked: the refresh token, then each of its current
 * (unexpired) access tokens with `token_type_hint=access_token`, so none keeps working until it
 * expires. Never fails: what the provider did is the answer.
 */
export const revokeAtProvider = (
  deps: { readonly servers: AuthorizationServersService; readonly keyRing: KeyRingService },
  key: GrantKey,
  record: GrantRecord
): Effect.Effect<Omit<RevokeResult, "removed">> =>
  Effect.gen(function* () {
    const found = yield* Effect.either(deps.servers.get(key.provider))
    if (found._tag === "Left") {
      return {
        upstream: "failed" as const,
        upstreamError: { code: found.left.code, message: found.left.message },
        accessTokens: "failed" as const,
        revokedAtProvider: { refreshToken: false, accessTokens: 0 }
      }
    }
    const client = found.right
    const refresh = yield* Effect.either(
      Effect.flatMap(deps.keyRing.decrypt(record.refreshToken, aadFor(key, "refresh_token")), (token) =>
        client.revoke({ token, tokenTypeHint: "refresh_token" })
      )
    )
    const grant = grantKeyString(key)
    if (refresh._tag === "Left" && !isUnsupported(refresh.left)) {
      const error = refresh.left
      if (error._tag === "UpstreamRejected" || error._tag === "UpstreamUnavailable") {
        yield* logUpstreamFailure("revocation", { provider: key.provider, grant }, error, {
          tokenType: "refresh_token"
        })
      }
    }
    const refreshPart =
      refresh._tag === "Right"
        ? { upstream: "revoked" as const }
        : {
            upstream: isUnsupported(refresh.left) ? ("not_supported" as const) : ("failed" as const),
            upstreamError: { code: codeOf(refresh.left), message: refresh.left.message }
          }
    const now = yield* Clock.currentTimeMillis
    const current = sharedTokensOf(record).filter((token) => token.expiresAt > now)
    if (current.length === 0 || refreshPart.upstream === "not_supported") {
      return {
        ...refreshPart,
        accessTokens: current.length === 0 ? ("none" as const) : ("not_supported" as const),
        revokedAtProvider: { refreshToken: refreshPart.upstream === "revoked", accessTokens: 0 }
      }
    }
    let revoked = 0
    let unsupported = false
    let failed = false
    for (const stored of current) {
      const result = yield* Effect.either(
        Effect.flatMap(deps.keyRing.decrypt(stored.envelope, aadFor(key, "access_token")), (token) =>
          client.revoke({ token, tokenTypeHint: "access_token" })
        )
      )
      if (result._tag === "Right") revoked += 1
      else if (isUnsupported(result.left)) unsupported = true
      else {
        failed = true
        if (result.left._tag === "UpstreamRejected" || result.left._tag === "UpstreamUnavailable") {
          yield* logUpstreamFailure("revocation", { provider: key.provider, grant }, result.left, {
            tokenType: "access_token"
          })
        }
      }
    }
    return {
      ...refreshPart,
      accessTokens: failed
        ? ("failed" as const)
        : unsupported
          ? ("not_supported" as const)
          : ("revoked" as const),
      revokedAtProvider: { refreshToken: refreshPart.upstream === "revoked", accessTokens: revoked }
    }
  })
