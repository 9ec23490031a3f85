import type { StoreSpec } from "../../src/StoreSpec.js"

/**
 * What a test process and its broker worker processes say to each other over the IPC channel of
 * `child_process.spawn`. Secrets (client secret, key material) travel only here, never on the command
 * line, where `ps` would show them.
 */

/** The upstream provider as plain data; the worker turns it into a `ProviderConfig`. */
export interface PlainProvider {
  readonly id: string
  readonly issuer: string
  readonly clientId: string
  readonly clientSecret: string
  readonly redirectUri: string
  readonly resource: string
  readonly requestTimeoutMs: number
}

export interface WorkerInit {
  /** The store each worker builds for itself with the store's own `layer(...)`. */
  readonly store: StoreSpec
  readonly provider: PlainProvider
  /** Key ring keys: 32 bytes, base64. Every process sharing the store needs the same keys. */
  readonly keys: ReadonlyArray<{ readonly kid: string; readonly material: string }>
  readonly broker: {
    /** The lease owner id of this worker's broker. */
    readonly instanceId: string
    readonly leaseTtlMs: number
    readonly leaseWaitMs: number
  }
  /**
   * Control runs only: wrap the store so that its lease excludes nothing (every acquire succeeds), i.e.
   * a broker with in-process locks only, to show that the test detects what the lease prevents.
   */
  readonly control?: "lease-excludes-nothing" | undefined
}

export type WorkerOp =
  /** Every call at once: `callsPerSubject` concurrent `backgroundToken` calls for each subject. */
  | {
      readonly kind: "burst"
      readonly subjects: ReadonlyArray<string>
      readonly callsPerSubject: number
    }
  /** One `backgroundToken` call. */
  | { readonly kind: "token"; readonly subject: string }

export interface CallError {
  readonly tag: string
  readonly code: string | undefined
  readonly reason: string | undefined
  readonly message: string
}

/** One call's outcome. Tokens never leave the worker: only a short SHA-256 prefix does. */
export type CallOutcome = {
  /** Epoch ms (`Date.now()`) when the call started and settled. */
  readonly startedAt: number
  readonly endedAt: number
} & (
  | { readonly ok: true; readonly tokenHash: string; readonly source: string }
  | { readonly ok: false; readonly error: CallError }
)

export interface SubjectOutcome {
  readonly subject: string
  readonly ok: number
  /** `<_tag>:<reason or code>` -> how many calls failed so. */
  readonly failures: Readonly<Record<string, number>>
  /** `<_tag>:<reason or code>` -> the first such failure's message and when it happened (epoch ms). */
  readonly firstFailure: Readonly<Record<string, { readonly message: string; readonly at: number }>>
  /** token hash -> how many calls got it. */
  readonly tokens: Readonly<Record<string, number>>
  /** where the token came from (cache, store, refresh) -> how many calls. */
  readonly sources: Readonly<Record<string, number>>
}

export interface BurstResult {
  readonly pid: number
  readonly startedAt: number
  readonly endedAt: number
  readonly subjects: ReadonlyArray<SubjectOutcome>
}

export type ToWorker =
  | { readonly type: "init"; readonly init: WorkerInit }
  | { readonly type: "request"; readonly id: number; readonly op: WorkerOp }

export type FromWorker =
  | { readonly type: "ready"; readonly pid: number }
  | { readonly type: "fatal"; readonly message: string }
  | { readonly type: "response"; readonly id: number; readonly value: unknown }
