import { RecordLog } from "./internal/RecordLog.js"

/**
 * One presentation of a refresh token that had already been rotated away (consumed), outside the reuse
 * grace period: at the token endpoint (oidc-provider then revokes the whole grant) or for revocation.
 * Who presented it and when; never the token.
 */
export interface ReuseRecord {
  /** The `sub` of the grant's user. */
  readonly subject: string
  readonly clientId: string
  /**
   * Where it was presented: `token` (a refresh; oidc-provider then revokes the whole grant) or
   * `revocation` (RFC 7009; the grant is revoked too unless `consumedRefreshTokenRevocation` is "ignored").
   */
  readonly endpoint: "token" | "revocation" | "introspection" | "other"
  /** Epoch milliseconds. */
  readonly at: number
}

/** The record of refresh-token reuses: a broker that loses a rotation, or races itself, shows up here. */
export class Reuses extends RecordLog<ReuseRecord> {}
