import type { MetricPair } from "effect"
import { type FastifyReply, type FastifyRequest, LogController } from "fastify"
import { collectDefaultMetrics, Registry } from "prom-client"

/**
 * `/metrics`: HTTP metrics and the process's defaults from prom-client, plus core's Effect metrics
 * (token requests, refreshes, leases, exchanges, ...) rendered from `Metric.snapshot` into the
 * Prometheus text format. Labels carry provider ids, outcomes, routes and status codes: never a subject.
 */
export interface HttpMetrics {
  readonly registry: Registry
  readonly observe: (method: string, route: string, status: number, seconds: number) => void
  /** Prometheus text of prom-client's metrics and the given Effect metric snapshot. */
  readonly render: (snapshot: ReadonlyArray<MetricPair.MetricPair.Untyped>) => Promise<string>
}

const DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

/** The requests of one method, route and status code: a count, and the duration histogram's state. */
interface RequestCounts {
  readonly labels: ReadonlyArray<readonly [string, string]>
  count: number
  sum: number
  /** Requests per bucket (not cumulative); the last one is beyond the largest bound. */
  readonly buckets: Array<number>
}

/**
 * The HTTP request metrics are plain counters, rendered at scrape time: prom-client hashes the label set
 * on every update (of a label child too), which cost about 6 us of a cache hit's ~75 us (CPU profile,
 * bench/http.ts with BENCH_PROFILE); here a request is a Map read by method, status and route (bounded:
 * routes are the registered patterns, or "unmatched") and a few increments.
 */
export const makeHttpMetrics = (): HttpMetrics => {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  const counts = new Map<string, RequestCounts>()
  const render = () => {
    if (counts.size === 0) return ""
    let requests = ""
    let durations = ""
    for (const entry of counts.values()) {
      requests += `http_requests_total${labelsText(entry.labels)} ${entry.count}\n`
      let cumulative = 0
      for (const [index, bound] of DURATION_BUCKETS.entries()) {
        cumulative += entry.buckets[index] ?? 0
        durations += `http_request_duration_seconds_bucket${labelsText([["le", String(bound)], ...entry.labels])} ${cumulative}\n`
      }
      durations += `http_request_duration_seconds_bucket${labelsText([["le", "+Inf"], ...entry.labels])} ${entry.count}\n`
      durations += `http_request_duration_seconds_sum${labelsText(entry.labels)} ${num(entry.sum)}\n`
      durations += `http_request_duration_seconds_count${labelsText(entry.labels)} ${entry.count}\n`
    }
    return `# HELP http_requests_total HTTP requests by method, route and status code
# TYPE http_requests_total counter
${requests}# HELP http_request_duration_seconds HTTP request duration by method, route and status code
# TYPE http_request_duration_seconds histogram
${durations}`
  }
  return {
    registry,
    observe: (method, route, status, seconds) => {
      const key = `${method} ${status} ${route}`
      let entry = counts.get(key)
      if (entry === undefined) {
        entry = {
          labels: [
            ["method", method],
            ["route", route],
            ["status_code", String(status)]
          ],
          count: 0,
          sum: 0,
          buckets: DURATION_BUCKETS.map(() => 0).concat(0)
        }
        counts.set(key, entry)
      }
      entry.count += 1
      entry.sum += seconds
      let bucket = 0
      while (bucket < DURATION_BUCKETS.length && seconds > (DURATION_BUCKETS[bucket] ?? 0)) bucket += 1
      entry.buckets[bucket] = (entry.buckets[bucket] ?? 0) + 1
    },
    render: async (snapshot) => `${await registry.metrics()}${render()}${renderEffectMetrics(snapshot)}`
  }
}

/**
 * fastify's log controller, counting every finished answer in the HTTP metrics before it logs the
 * request as completed, as it does by default. fastify calls `requestCompleted` once per answer when
 * the response has finished (a failed one too), with its route, status and elapsed time set: the moment
 * an `onResponse` hook runs, without the hook's stage in every request (its runner, its `next` closure).
 */
export const metricsLogController = (metrics: HttpMetrics): LogController =>
  new (class extends LogController {
    override requestCompleted(
      error: Error | null | undefined,
      request: FastifyRequest,
      reply: FastifyReply,
      metadata?: Record<string, unknown>
    ): void {
      metrics.observe(
        request.method,
        request.routeOptions.url ?? "unmatched",
        reply.statusCode,
        reply.elapsedTime / 1000
      )
      super.requestCompleted(error, request, reply, metadata)
    }
  })()

const NAME = /[^a-zA-Z0-9_:]/g
const escapeLabel = (value: string) => value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"')
const labelsText = (labels: ReadonlyArray<readonly [string, string]>) =>
  labels.length === 0
    ? ""
    : `{${labels.map(([k, v]) => `${k.replace(NAME, "_")}="${escapeLabel(v)}"`).join(",")}}`
const num = (value: number | bigint) =>
  typeof value === "bigint"
    ? value.toString()
    : Number.isFinite(value)
      ? String(value)
      : value > 0
        ? "+Inf"
        : "-Inf"

/** Counters, gauges and histograms of an Effect metric snapshot in the Prometheus text format. */
export const renderEffectMetrics = (snapshot: ReadonlyArray<MetricPair.MetricPair.Untyped>): string => {
  const families = new Map<string, { type: string; help: string; lines: Array<string> }>()
  for (const pair of snapshot) {
    const key = pair.metricKey
    const name = key.name.replace(NAME, "_")
    const labels = key.tags.map((tag) => [tag.key, tag.value] as const)
    const state = pair.metricState as unknown as Record<string, unknown>
    const help = key.description._tag === "Some" ? key.description.value : name
    let type: string
    const lines: Array<string> = []
    if ("buckets" in state && Array.isArray(state.buckets)) {
      type = "histogram"
      const buckets = state.buckets as ReadonlyArray<readonly [number, number]>
      let sawInf = false
      for (const [bound, cumulative] of buckets) {
        if (!Number.isFinite(bound)) sawInf = true
        lines.push(`${name}_bucket${labelsText([...labels, ["le", num(bound)]])} ${cumulative}`)
      }
      if (!sawInf)
        lines.push(`${name}_bucket${labelsText([...labels, ["le", "+Inf"]])} ${num(state.count as number)}`)
      lines.push(`${name}_sum${labelsText(labels)} ${num(state.sum as number)}`)
      lines.push(`${name}_count${labelsText(labels)} ${num(state.count as number)}`)
    } else if ("count" in state && !("sum" in state)) {
      type = "counter"
      lines.push(`${name}${labelsText(labels)} ${num(state.count as number)}`)
    } else if ("value" in state && (typeof state.value === "number" || typeof state.value === "bigint")) {
      type = "gauge"
      lines.push(`${name}${labelsText(labels)} ${num(state.value)}`)
    } else {
      continue
    }
    const family = families.get(name) ?? { type, help, lines: [] }
    family.lines.push(...lines)
    families.set(name, family)
  }
  let text = ""
  for (const [name, family] of families) {
    text += `# HELP ${name} ${family.help.replace(/\n/g, " ")}\n# TYPE ${name} ${family.type}\n${family.lines.join("\n")}\n`
  }
  return text
}
