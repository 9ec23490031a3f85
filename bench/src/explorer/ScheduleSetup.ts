import type { ProviderConfig } from "@token-broker/core"
import type { DevIdp, DevIdpUser, FaultSpec } from "@token-broker/dev-idp"
import { Cause, Option } from "effect"
import { providerConfig as fromPlain, plainProvider } from "../../test/support/provider.js"
import type { FaultyStoreOptions } from "./FaultyStore.js"
import type { ProviderFault } from "./Schedule.js"

// What one explorer schedule is set up with and judged by: the environment, timings, the dev-idp fault
// of each provider fault, and the rotation oracle.

export const PROVIDER = "notes"

/** What every schedule shares: dev-idp, the migrated SQLite file, the users grants are made for. */
export interface ExplorerEnv {
  readonly idp: DevIdp
  /** A migrated SQLite file; each schedule uses its own tenant in it. */
  readonly filename: string
  readonly users: ReadonlyArray<DevIdpUser>
}

export interface ScheduleOutcome {
  readonly violations: ReadonlyArray<string>
  /** The schedule step by step with what happened (no token, no secret). */
  readonly trace: ReadonlyArray<string>
  /** The longest the event loop was blocked while the schedule ran, in ms (every broker shares it). */
  readonly stalledMs: number
}

export interface RunOptions extends FaultyStoreOptions {
  readonly brokers: number
  /**
   * The control of invariant 7: a revoke step deletes the grant from the store and tells the provider
   * nothing, as a broker that skips RFC 7009 would. The invariant must catch it.
   */
  readonly revokeLocallyOnly?: boolean | undefined
  /** The control of the stall rerun: the schedule blocks the event loop this long before its steps. */
  readonly blockEventLoopMs?: number | undefined
}

/** The lease lives 300 ms (renewed every 100 ms); a stall (350 ms) outlives it. */
export const LEASE_TTL_MS = 300
export const STALL_MS = 350
export const REQUEST_TIMEOUT_MS = 1_000

/**
 * A stall of the process longer than a lease renewal interval (a third of the lease) can expire a lease
 * its holder would have renewed, and then two brokers may refresh one token: the timing the schedule
 * assumes did not hold. A schedule that breaks an invariant after such a stall is run again.
 */
export const STALL_BOUND_MS = LEASE_TTL_MS / 3

/** Faults after which the successor refresh token is physically lost: no answer carried it. */
export const LOSES_SUCCESSOR: ReadonlySet<ProviderFault> = new Set([
  "commit_then_502",
  "commit_then_non_json",
  "commit_then_drop"
])

/**
 * Faults whose answer leaves the broker unable to tell whether the provider rotated (a 5xx without
 * Retry-After, a timeout, a spoiled or dropped answer): a later refusal is then reported as
 * `rotation_lost`, since from the broker's side a successor may have been issued and lost.
 */
export const OUTCOME_UNKNOWN: ReadonlySet<ProviderFault> = new Set([
  "status_500",
  "status_503",
  "hang",
  "commit_then_502",
  "commit_then_non_json",
  "commit_then_drop"
])

export const faultSpec = (fault: ProviderFault): FaultSpec => {
  const only = { grantType: "refresh_token", count: 1 } as const
  switch (fault) {
    case "status_500":
      return { kind: "status", status: 500, ...only }
    case "status_503":
      return { kind: "status", status: 503, ...only }
    case "rate_limit":
      return { kind: "rate_limit", retryAfterSeconds: 0, ...only }
    case "hang":
      return { kind: "hang", ...only }
    case "invalid_grant":
      return { kind: "invalid_grant", ...only }
    case "commit_then_502":
      return { kind: "after_commit", answer: "status", status: 502, ...only }
    case "commit_then_json_invalid":
      return { kind: "after_commit", answer: "json_invalid", ...only }
    case "commit_then_non_json":
      return { kind: "after_commit", answer: "non_json", ...only }
    case "commit_then_drop":
      return { kind: "after_commit", answer: "drop", ...only }
  }
}

export const claimsOf = (token: string): Record<string, unknown> => {
  try {
    return JSON.parse(Buffer.from(token.split(".")[1] ?? "", "base64url").toString("utf8")) as Record<
      string,
      unknown
    >
  } catch {
    return {}
  }
}

/** A short description of a failure: tag and reason/code, never a message that could carry a value. */
export const failureOf = (cause: Cause.Cause<unknown>): string => {
  const failure = Cause.failureOption(cause)
  if (Option.isNone(failure)) return Cause.isInterruptedOnly(cause) ? "interrupted" : "defect"
  const e = failure.value as { _tag?: string; reason?: string; error?: string }
  return `${e._tag ?? "error"}${e.reason !== undefined ? `:${e.reason}` : e.error !== undefined ? `:${e.error}` : ""}`
}

/** dev-idp's notes provider, as every bench broker has it, with the explorer's short request timeout. */
export const providerConfig = (idp: DevIdp): ProviderConfig =>
  fromPlain(plainProvider(idp, REQUEST_TIMEOUT_MS))

export interface Epoch {
  readonly startedAt: number
  readonly scopeSets: Set<string>
  extraAllowed: number
  /** outcome-unknown faults injected in this epoch: each allows one extra rotation, in this epoch or a later one (the fault waits for the next refresh) */
  commitFaults: number
}

/**
 * Oracle 4: rotations per access-token lifetime (each epoch starts with a clock jump past every token).
 */
export const rotationViolations = (
  epochs: ReadonlyArray<Epoch>,
  rotations: ReadonlyArray<{ readonly at: number }>
): Array<string> => {
  const violations: Array<string> = []
  // An outcome-unknown fault is consumed by the next refresh, which may come epochs after the fault
  // was injected: its allowance carries forward until a rotation beyond the base allowance uses it.
  let commitCredit = 0
  epochs.forEach((e, n) => {
    const end = epochs[n + 1]?.startedAt ?? Number.POSITIVE_INFINITY
    const count = rotations.filter((r) => r.at >= e.startedAt && r.at < end).length
    commitCredit += e.commitFaults
    const base = Math.max(1, e.scopeSets.size) + e.extraAllowed
    const used = Math.min(commitCredit, Math.max(0, count - base))
    commitCredit -= used
    const allowed = base + used
    if (n < epochs.length - 1 && count > allowed) {
      violations.push(
        `${count} rotations between clock jumps ${n} and ${n + 1}, at most ${allowed} allowed (${e.scopeSets.size} scope set(s))`
      )
    }
  })
  return violations
}
