import { Metric, MetricBoundaries } from "effect"
import { tokenRequestsKey } from "./internal/metrics.js"

/**
 * The broker's metrics (Effect metrics; apps export them, e.g. as Prometheus text). Labels never carry
 * a subject or a token: only provider ids, outcomes and key ids.
 */

/** Every broker counter only goes up (Prometheus `_total`). */
const counter = (name: string, description: string) =>
  Metric.counter(name, { description, incremental: true })

/** A histogram of `buckets` buckets whose bounds double from `start`. */
const histogram = (name: string, description: string, start: number, buckets: number) =>
  Metric.histogram(name, MetricBoundaries.exponential({ start, factor: 2, count: buckets }), description)

/** One entry a metric: the name it is exported under, what it measures, and for a histogram its buckets. */
const metrics = {
  /**
   * `result`: hit | refresh | shared (another replica's token from the store) | coalesced | error. Its key
   * is in internal/metrics.ts, where a cache hit counts through its hook.
   */
  tokenRequests: Metric.fromMetricKey(tokenRequestsKey),
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
  refreshes: counter("refresh_total", "Refresh attempts at providers by outcome"),
  refreshDuration: histogram(
    "refresh_duration_seconds",
    "Duration of one refresh at the provider",
    0.005,
    14
  ),
  leaseWait: histogram("lease_wait_seconds", "Time spent waiting for a grant's lease", 0.001, 16),
  leaseLost: counter(
    "lease_lost_total",
    "Leases lost while held (renewal failed or compare-and-set conflict)"
  ),
  casConflicts: counter("cas_conflict_total", "Compare-and-set conflicts on grant writes"),
  decryptFailures: counter("decrypt_failures_total", "Stored secrets that failed to decrypt, by key id"),
  /** `outcome`: success | cached | invalid_subject_token | audience_mismatch | rejected | unavailable */
  tokenExchanges: counter("token_exchange_total", "RFC 8693 session token requests by outcome"),
  servedTokenLifetime: histogram(
    "served_token_remaining_seconds",
    "Remaining lifetime of access tokens when served after a cache miss",
    1,
    14
  ),
  circuitOpen: counter(
    "circuit_open_total",
    "Times a provider's circuit opened after repeated transient failures"
  ),
  /** `outcome`: dropped | reconsent_required. Access tokens callers reported as refused upstream (401). */
  accessRejections: counter(
    "access_token_rejected_total",
    "Access tokens that callers reported as refused by the upstream API"
  )
}

export const {
  tokenRequests,
  refreshes,
  refreshDuration,
  leaseWait,
  leaseLost,
  casConflicts,
  decryptFailures,
  tokenExchanges,
  servedTokenLifetime,
  circuitOpen,
  accessRejections
} = metrics
