import { type Effect, Metric, MetricLabel } from "effect"

type Counter = Metric.Metric.Counter<number>
type Histogram = Metric.Metric.Histogram<number>

const memo = new WeakMap<object, Map<string, unknown>>()

/** The metric with these tags, built once per tag set (hot paths tag on every call). */
const tagged = <M extends Counter | Histogram>(metric: M, tags: Readonly<Record<string, string>>): M => {
  let byTags = memo.get(metric)
  if (byTags === undefined) {
    byTags = new Map()
    memo.set(metric, byTags)
  }
  const id = Object.entries(tags).join("\u0000")
  let found = byTags.get(id) as M | undefined
  if (found === undefined) {
    found = Metric.taggedWithLabels(
      metric as Counter,
      Object.entries(tags).map(([k, v]) => MetricLabel.make(k, v))
    ) as M
    byTags.set(id, found)
  }
  return found
}

export const count = (
  counter: Counter,
  tags: Readonly<Record<string, string>>,
  by = 1
): Effect.Effect<void> => Metric.incrementBy(tagged(counter, tags), by)

export const observe = (
  histogram: Histogram,
  tags: Readonly<Record<string, string>>,
  value: number
): Effect.Effect<void> => Metric.update(tagged(histogram, tags), value)
