import type { TokenBroker } from "@token-broker/core"
import type { StoreSpec } from "../../src/StoreSpec.js"

/**
 * What a parent process (a reliability test, a chaos scenario, the refresh-storm benchmark) and its
 * broker worker processes (`brokerWorker.ts`) say to each other over the IPC channel of
 * `child_process.spawn`. Secrets (client secret, key material, and the served tokens of a worker started
 * with `revealTokens`) travel only here, never on the command line, where `ps` would show them, nor in
 * a log.
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

export type RefreshStep = TokenBroker.RefreshStep

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
  /** Reach the provider through this base URL (core's public-to-internal rewrite of every endpoint). */
  readonly internalBaseUrl?: string | undefined
  /** The broker's resilience settings; core's defaults where absent. */
  readonly earlyRefreshMs?: number | undefined
  readonly maxConcurrentRefreshes?: number | undefined
  readonly circuit?: { readonly failureThreshold: number; readonly openForMs: number } | undefined
  readonly retry?:
    | { readonly attempts: number; readonly baseDelayMs: number; readonly deadlineMs: number }
    | undefined
  /**
   * Stop at this step of the first refresh that reaches it: tell the parent (`step` message), then wait
   * until the parent sends `continue` (which a process that is SIGKILLed never receives).
   */
  readonly stopAt?: RefreshStep | undefined
  /**
   * Answer the served tokens themselves, not only their hash, and stream the tokens of a `load` run: for
   * a parent that checks every token (the chaos suite). Without it tokens never leave the worker.
   */
  readonly revealTokens?: boolean | undefined
  /**
   * Control runs only: wrap the store so that its lease excludes nothing (every acquire succeeds), i.e.
   * a broker with in-process locks only, to show that the test detects what the lease prevents.
   */
  readonly control?: "lease-excludes-nothing" | undefined
}

/** One `backgroundToken` call. */
export interface TokenOp {
  readonly kind: "token"
  readonly subject: string
}

/** Every call at once: `callsPerSubject` concurrent `backgroundToken` calls for each subject. */
export interface BurstOp {
  readonly kind: "burst"
  readonly subjects: ReadonlyArray<string>
  readonly callsPerSubject: number
}

/**
 * Calls for `durationMs`: `concurrency` loops, each picking a random subject, calling, pausing
 * `pauseMs`. With `revealTokens`, every new token, and a sample of every serve (one per subject per
 * 250 ms), is sent to the parent at once with the grant's status read right after it.
 */
export interface LoadOp {
  readonly kind: "load"
  readonly subjects: ReadonlyArray<string>
  readonly durationMs: number
  readonly concurrency: number
  readonly pauseMs: number
}

/** One call per subject, all at once; answers each call's latency. */
export interface StormOp {
  readonly kind: "storm"
  readonly subjects: ReadonlyArray<string>
}

/** The broker's counters (core's Effect metrics) in this process. */
export interface MetricsOp {
  readonly kind: "metrics"
}

export type WorkerOp = TokenOp | BurstOp | LoadOp | StormOp | MetricsOp

export interface CallError {
  readonly tag: string
  readonly code: string | undefined
  readonly reason: string | undefined
  readonly message: string
}

interface Timed {
  /** Epoch ms (`Date.now()`) when the call started and settled. */
  readonly startedAt: number
  readonly endedAt: number
}

interface Served {
  readonly ok: true
  /** A short SHA-256 prefix of the token: enough to tell tokens apart, nothing to replay. */
  readonly tokenHash: string
  /** Where the broker took it from (cache, store, refresh). */
  readonly source: string
  readonly expiresAt: number
}

interface Failed {
  readonly ok: false
  readonly error: CallError
}

/** One `token` call's outcome. */
export type CallOutcome = Timed & (Served | Failed)

/** One `token` call's outcome from a worker started with `revealTokens`: the token itself too. */
export type RevealedOutcome = Timed & ((Served & { readonly accessToken: string }) | Failed)

/** What a run of calls came to. */
export interface Tallies {
  readonly ok: number
  /** `<_tag>:<reason or code>` -> how many calls failed so. */
  readonly failures: Readonly<Record<string, number>>
  /** Where the token came from (cache, store, refresh) -> how many calls. */
  readonly sources: Readonly<Record<string, number>>
}

export interface SubjectOutcome extends Tallies {
  readonly subject: string
  /** `<_tag>:<reason or code>` -> the first such failure's message and when it happened (epoch ms). */
  readonly firstFailure: Readonly<Record<string, { readonly message: string; readonly at: number }>>
  /** token hash -> how many calls got it. */
  readonly tokens: Readonly<Record<string, number>>
}

export interface BurstResult {
  readonly pid: number
  readonly startedAt: number
  readonly endedAt: number
  readonly subjects: ReadonlyArray<SubjectOutcome>
}

export interface LoadResult extends Tallies {
  readonly calls: number
  /** `<_tag>:<reason or code>` -> epoch ms of the first and last such failure. */
  readonly failureSpans: Readonly<Record<string, { readonly first: number; readonly last: number }>>
  /** Epoch ms of every call served by a refresh (to see the circuit close again). */
  readonly lastRefreshAt: number | null
}

export interface StormResult extends Tallies {
  readonly latenciesMs: ReadonlyArray<number>
  readonly wallMs: number
  readonly distinctTokens: number
}

/** Counter name + labels -> value. */
export type MetricsSnapshot = ReadonlyArray<{
  readonly name: string
  readonly labels: string
  readonly value: number
}>

/** A token served during a `load` run, streamed to a parent that asked for `revealTokens`. */
export interface ServedToken {
  readonly subject: string
  readonly accessToken: string
  readonly servedAt: number
  readonly expiresAt: number
  /** Where the broker took it from (cache, store, refresh). */
  readonly source: string
  /** The grant's status read right after the serve ("unknown" when it could not be read). */
  readonly grantStatus: string
}

export type ToWorker =
  | { readonly type: "init"; readonly init: WorkerInit }
  | { readonly type: "request"; readonly id: number; readonly op: WorkerOp }
  /** Lets a worker stopped at its `stopAt` step go on. */
  | { readonly type: "continue" }

export type FromWorker =
  | { readonly type: "ready"; readonly pid: number }
  | { readonly type: "fatal"; readonly message: string }
  | { readonly type: "response"; readonly id: number; readonly value: unknown }
  | { readonly type: "step"; readonly step: RefreshStep; readonly subject: string }
  | ({ readonly type: "token" } & ServedToken)
