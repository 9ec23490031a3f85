import { Effect, Metric, type MetricHook, MetricKey, MetricLabel } from "effect"

type Counter = Metric.Metric.Counter<number>
type Histogram = Metric.Metric.Histogram<number>

const labelSets = new Map<string, ReadonlyArray<MetricLabel.MetricLabel>>()

/**
 * The label array of a tag set, built once: Effect caches a metric's hook per label-array identity,
 * so passing the same array keeps every update after the first a plain in-memory increment.
 */
const labelsOf = (tags: Readonly<Record<string, string>>): ReadonlyArray<MetricLabel.MetricLabel> => {
  // the id by concatenation: `Object.entries(tags).join` made two arrays and their strings per update
  let id = ""
  for (const k in tags) id += `${k}\u0001${tags[k]}\u0000`
  let labels = labelSets.get(id)
  if (labels === undefined) {
    labels = Object.entries(tags).map(([k, v]) => MetricLabel.make(k, v))
    labelSets.set(id, labels)
  }
  return labels
}

/** The key of `token_requests_total` (`Metrics.tokenRequests`), kept here for its hit counter. */
export const tokenRequestsKey = MetricKey.counter("token_requests_total", {
  description: "Background token requests by provider and result",
  incremental: true
})

/**
 * A counter's increment for one label value beside fixed ones, its hook resolved once per value from the
 * registry every Effect metric updates: `Metric.unsafeUpdate` would look the label array's hook up on
 * every call, so a cache hit counts with one Map read and the increment.
 */
export const counterBy = (
  key: MetricKey.MetricKey.Counter<number>,
  fixed: Readonly<Record<string, string>>,
  name: string
): ((value: string) => MetricHook.MetricHook.Counter<number>) => {
  const byValue = new Map<string, MetricHook.MetricHook.Counter<number>>()
  return (value) => {
    let hook = byValue.get(value)
    if (hook === undefined) {
      hook = Metric.globalMetricRegistry.get(
        MetricKey.taggedWithLabels(key, labelsOf({ [name]: value, ...fixed }))
      )
      byValue.set(value, hook)
    }
    return hook
  }
}

/** `count` now, outside Effect: for synchronous hot paths. */
export const countNow = (counter: Counter, tags: Readonly<Record<string, string>>, by = 1): void =>
  counter.unsafeUpdate(by, labelsOf(tags))

export const count = (
  counter: Counter,
  tags: Readonly<Record<string, string>>,
  by = 1
): Effect.Effect<void> => Effect.sync(() => countNow(counter, tags, by))

export const observe = (
  histogram: Histogram,
  tags: Readonly<Record<string, string>>,
  value: number
): Effect.Effect<void> => Effect.sync(() => histogram.unsafeUpdate(value, labelsOf(tags)))
