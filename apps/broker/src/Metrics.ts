import type { MetricPair } from "effect"
import { Counter, collectDefaultMetrics, Histogram, Registry } from "prom-client"

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

export const makeHttpMetrics = (): HttpMetrics => {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  const requests = new Counter({
    name: "http_requests_total",
    help: "HTTP requests by method, route and status code",
    labelNames: ["method", "route", "status_code"] as const,
    registers: [registry]
  })
  const duration = new Histogram({
    name: "http_request_duration_seconds",
    help: "HTTP request duration by method, route and status code",
    labelNames: ["method", "route", "status_code"] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry]
  })
  // bounded: routes are the registered patterns (or "unmatched"), methods and statuses a few each
  const children = new Map<
    string,
    { readonly requests: { inc: () => void }; readonly duration: { observe: (value: number) => void } }
  >()
  return {
    registry,
    observe: (method, route, status, seconds) => {
      // prom-client hashes a label object on every update; the children of a label set are kept instead
      const key = `${method} ${status} ${route}`
      let bound = children.get(key)
      if (bound === undefined) {
        const labels = { method, route, status_code: String(status) }
        bound = { requests: requests.labels(labels), duration: duration.labels(labels) }
        children.set(key, bound)
      }
      bound.requests.inc()
      bound.duration.observe(seconds)
    },
    render: async (snapshot) => `${await registry.metrics()}${renderEffectMetrics(snapshot)}`
  }
}

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
