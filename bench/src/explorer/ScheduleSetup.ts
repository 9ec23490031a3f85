import type { ProviderConfig } from "@token-broker/core"
import type { DevIdp, DevIdpUser, FaultSpec } from "@token-broker/dev-idp"
import { Cause, Option } from "effect"
import { providerConfig as fromPlain, plainProvider } from "../../test/support/provider.js"
import type { FaultyStoreOptions } from "./FaultyStore.js"
import type { CallSpec, ProviderFault } from "./Schedule.js"

// What one explorer schedule is set up with and judged by: the environment, timings, the dev-idp fault
// of each provider fault, and the oracles. The invariants every schedule is judged by:
// 1. dev-idp saw no reuse of a rotated-away refresh token, unless a successor was physically lost, and
//    then the grant reads `rotation_lost`;
// 2. no successor carried by a parseable 2xx (a success, or JSON a client library rejects) is dropped
//    (a reuse after one is a violation; an active grant's stored refresh token still refreshes);
// 3. every served token lives at least what was asked (broker clock and the JWT's own `exp`), carries
//    exactly the asked scopes, is for this subject and audience, and none is served for a deleted grant;
// 4. at most one rotation per access-token lifetime per grant and scope set (allowing one per
//    outcome-unknown fault and per re-consent);
// 5. after the faults, every broker recovers (no open circuit, no stuck lease);
// 6. the grant ends active (and its stored token works) or honestly marked;
// 7. a revoked grant leaves no refresh token at the provider that would still refresh (unless a successor
//    was physically lost). dev-idp runs with `consumedRefreshTokenRevocation: "ignored"`: revoking a
//    rotated-away token ends nothing, so a revoke racing a refresh is clean only if the refresh revokes
//    the successor it received. Presenting a rotated-away token for revocation is no violation when a
//    revoke ran: the revoker sends the stored token, which a refresh elsewhere may just have consumed.

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

/**
 * Oracles 1, 2 and 7, from dev-idp's records: no reuse of a rotated-away refresh token at refresh unless a
 * successor was physically lost; a rotated-away token presented for revocation only when a revoke ran
 * (the revoker sends the stored token, which a refresh elsewhere may just have consumed); and a revoked
 * grant leaves nothing at the provider that would still refresh.
 */
export const reuseViolations = (
  reuses: ReadonlyArray<{ readonly endpoint: string }>,
  facts: {
    readonly physicalLoss: boolean
    readonly revokesRun: number
    readonly grantRemoved: boolean
    /** The subject's refresh tokens that would still refresh at the provider. */
    readonly live: number
  }
): {
  readonly violations: Array<string>
  readonly refreshReuses: number
  readonly revocationReuses: number
} => {
  const violations: Array<string> = []
  const refreshReuses = reuses.filter((r) => r.endpoint !== "revocation").length
  const revocationReuses = reuses.length - refreshReuses
  if (refreshReuses > 0 && !facts.physicalLoss) {
    violations.push(
      `the broker presented a refresh token the provider had already rotated away (${refreshReuses} reuse(s)), though no successor was physically lost`
    )
  }
  if (revocationReuses > 0 && facts.revokesRun === 0 && !facts.physicalLoss) {
    violations.push(
      `the broker revoked a refresh token the provider had already rotated away (${revocationReuses} time(s)), though no revoke ran`
    )
  }
  if (facts.grantRemoved && facts.live > 0 && !facts.physicalLoss) {
    violations.push(
      `the grant was revoked, but the provider still holds ${facts.live} refresh token(s) of it that would refresh`
    )
  }
  return { violations, refreshReuses, revocationReuses }
}

/**
 * Oracle 3, for one served token: it lives at least what was asked (by the broker's clock and by the
 * JWT's own `exp`), carries exactly the asked scopes, is for this subject and audience, and was not
 * served for a grant revoked before the call started.
 */
export const servedViolations = (served: {
  readonly where: string
  readonly claims: Record<string, unknown>
  readonly subject: string
  readonly audience: string
  readonly spec: CallSpec
  readonly expiresAt: number
  /** When it was served, by the broker's clock and by the real one. */
  readonly servedAt: number
  readonly servedReal: number
  readonly revokedBefore: boolean
}): Array<string> => {
  const { where, claims, spec } = served
  const violations: Array<string> = []
  const minTtlMs = spec.minTtlSeconds * 1000
  if (claims.sub !== served.subject) violations.push(`${where}: a token of another subject`)
  const aud = Array.isArray(claims.aud) ? claims.aud : [claims.aud]
  if (!aud.includes(served.audience)) violations.push(`${where}: a token of another audience`)
  const scopes = (typeof claims.scope === "string" ? claims.scope.split(" ") : []).sort().join(" ")
  const asked = spec.scopes === "read" ? "notes:read" : "notes:read notes:write"
  if (scopes !== asked) violations.push(`${where}: scopes "${scopes}", asked "${asked}"`)
  if (served.expiresAt - served.servedAt < minTtlMs) {
    violations.push(
      `${where}: ${Math.round((served.expiresAt - served.servedAt) / 1000)} s of life by the broker's clock, asked at least ${spec.minTtlSeconds} s`
    )
  }
  const exp = typeof claims.exp === "number" ? claims.exp * 1000 : 0
  // the JWT's exp has whole seconds: one second of doubt in the broker's favour
  if (exp - served.servedReal < minTtlMs - 1000) {
    violations.push(
      `${where}: the JWT lives ${Math.round((exp - served.servedReal) / 1000)} s more, asked at least ${spec.minTtlSeconds} s`
    )
  }
  if (served.revokedBefore)
    violations.push(`${where}: served for a grant that was revoked before the call started`)
  return violations
}

/**
 * Oracle 6 for a grant that ends marked: `rotation_lost` only where a successor was lost (or the outcome
 * of a refresh was unknown and the provider then refused), `invalid_grant` only where the provider refused.
 */
export const markViolation = (
  status: string,
  code: string | null,
  facts: {
    readonly physicalLoss: boolean
    readonly outcomeUnknown: boolean
    /** An injected invalid_grant, or a revoke at the provider. */
    readonly refusedByProvider: boolean
  }
): string | undefined => {
  const { physicalLoss, outcomeUnknown, refusedByProvider } = facts
  const honest =
    (code === "rotation_lost" && (physicalLoss || (outcomeUnknown && refusedByProvider))) ||
    (code === "invalid_grant" && refusedByProvider)
  if (honest) return undefined
  return `the grant reads ${status} (${code ?? "no code"}) but ${
    physicalLoss
      ? "a successor was lost: it must read rotation_lost"
      : refusedByProvider
        ? "only an invalid_grant from the provider explains a mark"
        : "nothing the provider did explains it"
  }`
}
