import { Metric, MetricBoundaries } from "effect"
import { tokenRequestsKey } from "./internal/metrics.js"

/**
 * The broker's metrics (Effect metrics; apps export them, e.g. as Prometheus text). Labels never carry
 * a subject or a token: only provider ids, outcomes and key ids.
 */

/** `result`: hit | refresh | shared (another replica's token from the store) | coalesced | error */
export const tokenRequests: Metric.Metric.Counter<number> = Metric.fromMetricKey(tokenRequestsKey)

/**
 * `outcome`: success | invalid_grant | refused_without_error (a 400/401 without an OAuth error) |
 * transient | race_recovered | rotation_lost, and where the
 * provider may have rotated without the broker storing a clean result:
 * - outcome_unknown: a 5xx, timeout, dropped connection or unreadable 2xx without a refresh token; the
 *   attempt marker stays, nothing is retried with the consumed token;
 * - salvaged: a 2xx that failed validation; its refresh token was recovered and stored;
 * - rotation_unwritten: the rotated refresh token could not be stored while the lease was held (kept in
 *   memory; the next refresh of the grant in this process stores it first);
 * - grant_removed: the grant was revoked while it was refreshed; nothing served, the successor revoked.
 */
export const refreshes = Metric.counter("refresh_total", {
  description: "Refresh attempts at providers by outcome",
  incremental: true
})

export const refreshDuration = Metric.histogram(
  "refresh_duration_seconds",
  MetricBoundaries.exponential({ start: 0.005, factor: 2, count: 14 }),
  "Duration of one refresh at the provider"
)

export const leaseWait = Metric.histogram(
  "lease_wait_seconds",
  MetricBoundaries.exponential({ start: 0.001, factor: 2, count: 16 }),
  "Time spent waiting for a grant's lease"
)

export const leaseLost = Metric.counter("lease_lost_total", {
  description: "Leases lost while held (renewal failed or compare-and-set conflict)",
  incremental: true
})

export const casConflicts = Metric.counter("cas_conflict_total", {
  description: "Compare-and-set conflicts on grant writes",
  incremental: true
})

export const decryptFailures = Metric.counter("decrypt_failures_total", {
  description: "Stored secrets that failed to decrypt, by key id",
  incremental: true
})

/** `outcome`: success | cached | invalid_subject_token | audience_mismatch | rejected | unavailable */
export const tokenExchanges = Metric.counter("token_exchange_total", {
  description: "RFC 8693 session token requests by outcome",
  incremental: true
})

export const servedTokenLifetime = Metric.histogram(
  "served_token_remaining_seconds",
  MetricBoundaries.exponential({ start: 1, factor: 2, count: 14 }),
  "Remaining lifetime of access tokens when served after a cache miss"
)

export const circuitOpen = Metric.counter("circuit_open_total", {
  description: "Times a provider's circuit opened after repeated transient failures",
  incremental: true
})

/** `outcome`: dropped | reconsent_required. Access tokens callers reported as refused upstream (401). */
export const accessRejections = Metric.counter("access_token_rejected_total", {
  description: "Access tokens that callers reported as refused by the upstream API",
  incremental: true
})
