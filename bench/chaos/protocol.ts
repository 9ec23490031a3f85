import type { CallError, WorkerInit } from "../test/support/workerProtocol.js"

/**
 * What the chaos suite and its broker processes (`worker.ts`) say to each other over IPC. It extends
 * the reliability suite's worker protocol (`test/support/workerProtocol.ts`): the same `WorkerInit`
 * (store spec, plain provider, key ring, lease), plus what a chaos run needs - where to stop a refresh,
 * the broker's resilience settings, the proxy in front of dev-idp - and the served tokens themselves,
 * which the parent decodes and checks (a wrong token is the one outcome the suite must never see).
 * Tokens and secrets travel only over this channel, never on a command line or in a log.
 */

export type RefreshStep = "before_upstream" | "after_upstream" | "after_write"

export interface ChaosInit {
  readonly base: WorkerInit
  /** Reach dev-idp through this base URL (core's public-to-internal rewrite of every endpoint). */
  readonly internalBaseUrl?: string | undefined
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
}

export type ChaosOp =
  /** One `backgroundToken` call. */
  | { readonly kind: "token"; readonly subject: string }
  /**
   * Calls for `durationMs`: `concurrency` loops, each picking a random subject, calling, pausing
   * `pauseMs`. Every new token, and a sample of every serve (one per subject per 250 ms), is sent to
   * the parent at once with the grant's status read right after it.
   */
  | {
      readonly kind: "load"
      readonly subjects: ReadonlyArray<string>
      readonly durationMs: number
      readonly concurrency: number
      readonly pauseMs: number
    }
  /** One call per subject, all at once; answers each call's latency. */
  | { readonly kind: "storm"; readonly subjects: ReadonlyArray<string> }
  /** The broker's counters (core's Effect metrics) in this process. */
  | { readonly kind: "metrics" }

export type TokenResult = {
  readonly startedAt: number
  readonly endedAt: number
} & (
  | {
      readonly ok: true
      readonly accessToken: string
      readonly expiresAt: number
      readonly source: string
    }
  | { readonly ok: false; readonly error: CallError }
)

export interface LoadResult {
  readonly calls: number
  readonly ok: number
  /** `<_tag>:<reason or code>` -> count. */
  readonly failures: Readonly<Record<string, number>>
  /** `<_tag>:<reason or code>` -> epoch ms of the first and last such failure. */
  readonly failureSpans: Readonly<Record<string, { readonly first: number; readonly last: number }>>
  readonly sources: Readonly<Record<string, number>>
  /** Epoch ms of every call served by a refresh (to see the circuit close again). */
  readonly lastRefreshAt: number | null
}

export interface StormResult {
  readonly ok: number
  readonly failures: Readonly<Record<string, number>>
  readonly latenciesMs: ReadonlyArray<number>
  readonly wallMs: number
  readonly distinctTokens: number
  readonly sources: Readonly<Record<string, number>>
}

/** Counter name + labels -> value. */
export type MetricsSnapshot = ReadonlyArray<{
  readonly name: string
  readonly labels: string
  readonly value: number
}>

export type ToChaosWorker =
  | { readonly type: "init"; readonly init: ChaosInit }
  | { readonly type: "request"; readonly id: number; readonly op: ChaosOp }
  | { readonly type: "continue" }

export type FromChaosWorker =
  | { readonly type: "ready"; readonly pid: number }
  | { readonly type: "fatal"; readonly message: string }
  | { readonly type: "response"; readonly id: number; readonly value: unknown }
  | { readonly type: "step"; readonly step: RefreshStep; readonly subject: string }
  | {
      readonly type: "token"
      readonly subject: string
      readonly accessToken: string
      readonly servedAt: number
      readonly expiresAt: number
      /** Where the broker took it from (cache, store, refresh). */
      readonly source: string
      /** The grant's status read right after the serve ("unknown" when it could not be read). */
      readonly grantStatus: string
    }
