import type { GrantRecord, StoredAccessToken } from "../Grant.js"
import * as Scopes from "../Scopes.js"

/** How many access tokens, one per requested scope set, a grant shares between replicas. */
export const MAX_SHARED_ACCESS_TOKENS = 4

/** The scope set a shared access token serves: the one it was asked for. */
export const servedScopes = (token: StoredAccessToken): ReadonlyArray<string> =>
  token.requested ?? token.scopes

/** Every access token a grant shares, newest first. */
export const sharedTokensOf = (record: GrantRecord): ReadonlyArray<StoredAccessToken> =>
  record.accessToken === null ? [] : [record.accessToken, ...(record.scopedAccessTokens ?? [])]

/**
 * The shared tokens after `token` was minted at `now`: it becomes the newest, replacing the one of its
 * scope set; the others are kept while they live, the newest first, up to MAX_SHARED_ACCESS_TOKENS.
 */
export const withSharedToken = (
  record: GrantRecord,
  token: StoredAccessToken,
  now: number
): Pick<GrantRecord, "accessToken" | "scopedAccessTokens"> => {
  const others = sharedTokensOf(record)
    .filter((other) => other.expiresAt > now && !Scopes.same(servedScopes(other), servedScopes(token)))
    .slice(0, MAX_SHARED_ACCESS_TOKENS - 1)
  return { accessToken: token, scopedAccessTokens: others }
}

/** No shared token at all: the grant was refused, marked, or its tokens reported refused. */
export const NO_SHARED_TOKENS: Pick<GrantRecord, "accessToken" | "scopedAccessTokens"> = {
  accessToken: null,
  scopedAccessTokens: []
}
