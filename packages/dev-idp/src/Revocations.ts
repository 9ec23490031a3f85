import { RecordLog } from "./internal/RecordLog.js"

/** One RFC 7009 revocation request that the provider accepted (the token itself is never kept). */
export interface RevocationRecord {
  readonly clientId: string
  /** The client's `token_endpoint_auth_method`, e.g. `client_secret_basic`. */
  readonly authMethod: string
  readonly tokenTypeHint: string | undefined
  /** Epoch milliseconds. */
  readonly at: number
}

/** The record of revocation requests. */
export class Revocations extends RecordLog<RevocationRecord> {}
