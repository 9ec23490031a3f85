import { Data } from "effect"

/**
 * Why a Vault request failed. Stable values callers (and tests) switch on:
 * - `sealed`: Vault answered 503 "Vault is sealed" (or a standby/uninitialised node answered 503/501).
 * - `permission_denied`: 403 for a valid token whose policy does not allow the path.
 * - `token_expired`: 403 "invalid token": the token expired or was revoked (and AppRole could not log in again).
 * - `mount_missing`: 404 "no handler for route": no secrets engine is mounted at the configured path.
 * - `timeout`: no answer within the configured timeout.
 * - `unavailable`: the connection failed, or Vault answered 5xx/429.
 * - `invalid_response`: Vault answered something this adapter does not understand (a wrong engine version,
 *   an unexpected status or body).
 */
export type VaultErrorReason =
  | "sealed"
  | "permission_denied"
  | "token_expired"
  | "mount_missing"
  | "timeout"
  | "unavailable"
  | "invalid_response"

/**
 * The detail of a failed Vault request. It is the `cause` of the `StorageUnavailable` a store operation
 * fails with, and is never built from a token, a secret or a stored value: only the method, the API path,
 * the status and Vault's own error messages.
 */
export class VaultError extends Data.TaggedError("VaultError")<{
  readonly reason: VaultErrorReason
  /** The API path asked, without `/v1/` and without query (e.g. `secret/data/token-broker/grants/...`). */
  readonly path: string
  readonly status?: number | undefined
  readonly message: string
}> {
  readonly code = "vault_error" as const
}
