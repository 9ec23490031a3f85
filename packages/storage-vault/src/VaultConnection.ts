import type { Duration, Redacted } from "effect"

/**
 * How to reach and authenticate to Vault (or OpenBao). Plain data: it survives `JSON.stringify`, so a
 * child process can build the same store from the same options (secrets may then be plain strings;
 * give `Redacted` values where the options never leave the process).
 */
export interface VaultConnectionOptions {
  /** Base address, e.g. `https://vault.example.internal:8200` (no `/v1`). */
  readonly address: string
  readonly auth: VaultAuth
  /** Vault Enterprise / OpenBao namespace, sent as `X-Vault-Namespace` on every request. */
  readonly namespace?: string | undefined
  /** PEM of the CA that signed Vault's TLS certificate, when it is not a public one. */
  readonly caCert?: string | undefined
  /** Time budget of one HTTP request, including reading the answer (default 5 seconds). */
  readonly timeout?: Duration.DurationInput | undefined
  /**
   * How often a failed request is tried again when Vault was unreachable, timed out, answered 5xx/429 or
   * was sealed (default 2; backoff 100 ms, doubling). Writes are safe to retry: every write is a
   * check-and-set whose outcome the store verifies by reading back.
   */
  readonly retries?: number | undefined
}

export type VaultAuth =
  /** A token; renewed before it expires when it is renewable. */
  | { readonly token: string | Redacted.Redacted<string> }
  /**
   * AppRole login (`auth/<mount>/login`); the token it yields is renewed, and a new login is made when it
   * can no longer be renewed or has expired.
   */
  | {
      readonly appRole: {
        readonly roleId: string
        readonly secretId: string | Redacted.Redacted<string>
        /** Where the AppRole auth method is mounted (default `approle`). */
        readonly mount?: string | undefined
      }
    }
