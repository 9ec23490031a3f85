import { Effect, type Metric, MetricLabel } from "effect"

type Counter = Metric.Metric.Counter<number>
type Histogram = Metric.Metric.Histogram<number>

const labelSets = new Map<string, ReadonlyArray<MetricLabel.MetricLabel>>()

/**
 * The label array of a tag set, built once: Effect caches a metric's hook per label-array identity,
 * so passing the same array keeps every update after the first a plain in-memory increment.
 */
const labelsOf = (tags: Readonly<Record<string, string>>): ReadonlyArray<MetricLabel.MetricLabel> => {
  const entries = Object.entries(tags)
  const id = entries.join("\u0000")
  let labels = labelSets.get(id)
  if (labels === undefined) {
    labels = entries.map(([k, v]) => MetricLabel.make(k, v))
    labelSets.set(id, labels)
  }
  return labels
}

/**
 * The label array of one label value beside fixed ones, memoised per value: for hot paths that would
 * otherwise build and join a tag record per call (a cache hit counts with one Map read).
 */
export const labelsBy = (
  fixed: Readonly<Record<string, string>>,
  name: string
): ((value: string) => ReadonlyArray<MetricLabel.MetricLabel>) => {
  const byValue = new Map<string, ReadonlyArray<MetricLabel.MetricLabel>>()
  return (value) => {
    let labels = byValue.get(value)
    if (labels === undefined) {
      labels = labelsOf({ [name]: value, ...fixed })
      byValue.set(value, labels)
    }
    return labels
  }
}

export const count = (
  counter: Counter,
  tags: Readonly<Record<string, string>>,
  by = 1
): Effect.Effect<void> => Effect.sync(() => counter.unsafeUpdate(by, labelsOf(tags)))

export const observe = (
  histogram: Histogram,
  tags: Readonly<Record<string, string>>,
  value: number
): Effect.Effect<void> => Effect.sync(() => histogram.unsafeUpdate(value, labelsOf(tags)))
