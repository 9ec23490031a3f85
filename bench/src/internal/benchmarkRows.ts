/** The rows of BENCHMARKS.md's table, one builder per benchmark, from `bench/results/latest.json`. */

export type Json = Record<string, unknown>

export interface Latest {
  readonly date: string
  readonly command: string
  readonly machine: Json
  readonly totalSeconds: number
  readonly steps: ReadonlyArray<{
    readonly id: string
    readonly command: string
    readonly exitCode: number | null
    readonly seconds: number
    readonly json: ReadonlyArray<Json>
  }>
  readonly storage: unknown
  readonly chaos: unknown
}

export interface Row {
  readonly bench: string
  readonly figure: string
  readonly value: string
  readonly baseline: string
  readonly ratio: string
  /** What the ratio means ("lower is better", ...). */
  readonly note: string
}

export const num = (value: unknown): number => (typeof value === "number" ? value : Number.NaN)
export const obj = (value: unknown): Json =>
  typeof value === "object" && value !== null ? (value as Json) : {}
export const arr = (value: unknown): ReadonlyArray<Json> =>
  Array.isArray(value) ? (value as Array<Json>) : []
export const fmt = (value: number, digits = 0) =>
  Number.isFinite(value) ? value.toLocaleString("en-US", { maximumFractionDigits: digits }) : "n/a"
export const ratio = (value: number) => (Number.isFinite(value) ? `${fmt(value, 2)}x` : "n/a")

const coreRows = (json: Json): Array<Row> => {
  const results = arr(json.results)
  const byName = new Map(results.map((r) => [String(r.name), r]))
  return results.flatMap((r) => {
    const baseline = byName.get(String(r.baseline))
    if (baseline === undefined) return []
    const spread = arr(r.ratioSpread).map((v) => num(v))
    return [
      {
        bench: "core cache hit",
        figure: `${String(r.name)}`,
        value: `${fmt(num(r.opsPerSecond))} ops/s (${fmt(num(r.microsPerOp), 2)} us/op)`,
        baseline: `${String(baseline.name)}: ${fmt(num(baseline.opsPerSecond))} ops/s`,
        ratio: `${ratio(num(r.ratioToBaseline))} (rounds ${spread.map((v) => fmt(v, 2)).join("-")})`,
        note: `time per call / baseline's, median of ${fmt(num(json.rounds))} alternating rounds`
      }
    ]
  })
}

const spreadOf = (values: unknown) => {
  const [low, high] = arr(values).map((v) => num(v))
  return low === undefined || high === undefined ? "" : ` (rounds ${fmt(low, 2)}-${fmt(high, 2)})`
}

/** A server's throughput and p99 rows against its baseline's (`run`: the rounds, connections and seconds). */
const loadRows = (
  bench: string,
  what: string,
  server: Json,
  bare: Json,
  baseline: readonly [throughput: string, latency: string],
  figures: Json,
  run: Json
): Array<Row> => [
  {
    bench,
    figure: `${what}: requests/s`,
    value: `${fmt(num(server.rps))} req/s`,
    baseline: `${baseline[0]}: ${fmt(num(bare.rps))} req/s`,
    ratio: `${ratio(num(figures.ratio))}${spreadOf(figures.ratioSpread)}`,
    note: `throughput / baseline's, median of ${String(run.rounds)} alternating rounds (${String(run.connections)} connections, ${String(run.seconds)} s each)`
  },
  {
    bench,
    figure: `${what}: p99 latency`,
    value: `${fmt(num(server.p99ms))} ms`,
    baseline: `${baseline[1]}: ${fmt(num(bare.p99ms))} ms`,
    ratio: `${ratio(num(figures.p99Ratio))}${spreadOf(figures.p99RatioSpread)}`,
    note: "latency / baseline's, median of the rounds"
  }
]

const brokerRows = (json: Json): Array<Row> => {
  const routeRows = (route: Json, what: string): Array<Row> =>
    loadRows(
      "HTTP broker",
      what,
      obj(route.broker),
      obj(route.bare),
      ["bare fastify, same body size", "bare fastify"],
      route,
      json
    )
  return [
    ...routeRows(json, "background token, cache hit"),
    ...(json.exchange === undefined
      ? []
      : routeRows(obj(json.exchange), "token exchange (/oauth/token), cached session token"))
  ]
}

const mcpRows = (json: Json): Array<Row> => {
  const what = `tools/call ${String(json.tool)} (${fmt(num(json.notes))} notes), cached upstream token (${String(json.tokenSource ?? "remote")} broker)`
  const [mcp, bare] = [obj(json.mcp), obj(json.bare)]
  return [
    ...loadRows(
      "MCP server",
      what,
      mcp,
      bare,
      ["MCP SDK server, no auth, the list in memory", "MCP SDK server"],
      json,
      json
    ),
    {
      bench: "MCP server",
      figure: `${what}: CPU time of the server's process per call`,
      value: `${fmt(num(mcp.cpuMsPerCall), 2)} ms${
        mcp.devIdpMsPerCall === undefined
          ? ""
          : ` (besides, per call: dev-idp ${fmt(num(mcp.devIdpMsPerCall), 2)} ms, the HTTP broker ${fmt(num(mcp.brokerMsPerCall), 2)} ms)`
      }`,
      baseline: `MCP SDK server: ${fmt(num(bare.cpuMsPerCall), 2)} ms`,
      ratio: `${ratio(num(json.cpuRatio))}${spreadOf(json.cpuRatioSpread)}`,
      note: "CPU per call / baseline's (from /proc), median of the rounds; lower is better"
    }
  ]
}

export const storageRows = (storage: Json): Array<Row> => {
  const grants = obj(storage.grants)
  return arr(storage.results).flatMap((result) => {
    const phases = arr(result.phases)
    const base = phases[0]
    const full = phases[phases.length - 1]
    if (base === undefined || full === undefined || base === full) return []
    return (["get", "compareAndSet"] as const).flatMap((op) =>
      (["p50Us", "p99Us"] as const).map((stat) => ({
        bench: `storage (${String(result.backend)})`,
        figure: `${op} ${stat.slice(0, 3)} at ${fmt(num(grants.full))} grants`,
        value: `${fmt(num(obj(full[op])[stat]), 1)} us`,
        baseline: `at ${fmt(num(grants.baseline))} grants: ${fmt(num(obj(base[op])[stat]), 1)} us`,
        ratio: ratio(num(obj(full[op])[stat]) / num(obj(base[op])[stat])),
        note: "latency / baseline's"
      }))
    )
  })
}

const stormRows = (json: Json): Array<Row> => {
  const baseline = obj(json.baseline)
  const single = num(baseline.singleRefreshMedianMs)
  const base = `one refresh alone: ${fmt(single)} ms`
  const subjects = fmt(num(json.subjects))
  return [
    {
      bench: "refresh storm",
      figure: `${subjects} subjects expiring at once: served`,
      value: `${fmt(num(json.served))} / ${subjects}, ${fmt(num(json.refreshRequests))} refresh requests at dev-idp`,
      baseline: "one refresh per grant",
      ratio: ratio(num(json.refreshRequests) / num(json.subjects)),
      note: "refreshes per grant (must be 1)"
    },
    {
      bench: "refresh storm",
      figure: "peak refreshes in flight at dev-idp",
      value: fmt(num(json.peakInFlightAtDevIdp)),
      baseline: `the cap (maxConcurrentRefreshes): ${fmt(num(json.cap))}`,
      ratio: ratio(num(json.peakInFlightAtDevIdp) / num(json.cap)),
      note: "peak / cap (must be <= 1)"
    },
    ...(["p50Ms", "p99Ms"] as const).map((stat) => ({
      bench: "refresh storm",
      figure: `call latency ${stat.slice(0, 3)}`,
      value: `${fmt(num(json[stat]))} ms`,
      baseline: base,
      ratio: ratio(num(json[stat]) / single),
      note: "queueing behind the cap"
    })),
    {
      bench: "refresh storm",
      figure: "refreshes per second",
      value: `${fmt(num(json.refreshesPerSecond))} /s (wall ${fmt(num(json.wallMs) / 1000, 1)} s)`,
      baseline: `one at a time: ${fmt(1000 / single, 1)} /s`,
      ratio: ratio(num(obj(json.ratios).throughput)),
      note: "throughput / baseline's"
    }
  ]
}

const stormMemoryRows = (json: Json): Array<Row> => {
  const subjects = fmt(num(json.subjects))
  const capped = json.maxOldSpaceMiB === null ? "" : ` (heap capped at ${fmt(num(json.maxOldSpaceMiB))} MiB)`
  return [
    {
      bench: "refresh storm memory",
      figure: `heap per pending call, ${subjects} calls pending behind the cap${capped}`,
      value: `${fmt(num(json.heapBytesPerPendingCall))} B (goal <= ${fmt(num(json.goalBytes))} B; ${fmt(num(json.heapMiBAtPeak), 1)} MiB heap at the peak)`,
      baseline: `a pending call into a function that only queues its caller: ${fmt(num(obj(json.baseline).heapBytesPerPendingCall))} B`,
      ratio: ratio(num(json.ratio)),
      note: `heap / baseline's; then ${fmt(num(json.served))} / ${subjects} served, ${fmt(num(json.upstreamRefreshes))} upstream refreshes`
    }
  ]
}

const memoryRows = (json: Json): Array<Row> => [
  {
    bench: "memory",
    figure: `per cached token at ${fmt(num(json.subjects))} subjects (${fmt(num(json.tokenChars))}-char tokens)`,
    value: `${fmt(num(json.cacheBytesPerToken))} B (${fmt(num(json.cacheOverheadBytes))} B on top of key + token)`,
    baseline: `plain Map of the same strings: ${fmt(num(json.baselineBytesPerToken))} B`,
    ratio: ratio(num(json.ratio)),
    note: "heap / baseline's"
  }
]

const cliRows = (json: Json): Array<Row> => [
  {
    bench: "CLI start-up",
    figure: "`token-broker --help`, mean",
    value: `${fmt(num(json.cliHelpMeanMs))} ms (median ${fmt(num(json.cliHelpMedianMs))} ms, ${fmt(num(json.runs))} runs)`,
    baseline: `node -e 0: ${fmt(num(json.nodeBareMeanMs))} ms`,
    ratio: ratio(num(json.ratio)),
    note: "time / baseline's (the help recorded at build time, the CLI not loaded)"
  },
  {
    bench: "CLI start-up",
    figure: "`token-broker keys --help` (the whole CLI loaded, as for every command), mean",
    value: `${fmt(num(json.wholeCliMeanMs))} ms`,
    baseline: `node -e 0: ${fmt(num(json.nodeBareMeanMs))} ms`,
    ratio: ratio(num(json.wholeCliRatio)),
    note: "time / baseline's"
  }
]

const callerSecretRows = (json: Json): Array<Row> =>
  arr(json.results)
    .filter((r) => r.name !== "right secret")
    .map((r) => ({
      bench: "caller secret verification",
      figure: `\`verifySecret\`: ${String(r.name)}, median of ${fmt(num(json.rounds))} rounds`,
      value: `${fmt(num(r.medianMs), 2)} ms`,
      baseline: `the right secret: ${fmt(num(json.baselineMs), 2)} ms`,
      ratio: ratio(num(r.ratio)),
      note: "time / the right secret's (1.00x: no dependence on the candidate)"
    }))

export const rowsOf = (latest: Latest): Array<Row> =>
  latest.steps.flatMap((step) =>
    step.json.flatMap((json): Array<Row> => {
      const name = String(json.benchmark ?? json.name ?? "")
      if (name === "core-cache-hit") return coreRows(json)
      if (name.startsWith("broker-http")) return brokerRows(json)
      if (name === "mcp-server-tools-call") return mcpRows(json)
      if (name === "refresh-storm") return stormRows(json)
      if (name === "memory-per-cached-token") return memoryRows(json)
      if (name === "refresh-storm-memory") return stormMemoryRows(json)
      if (name === "cli-startup") return cliRows(json)
      if (name === "caller-secret-verify") return callerSecretRows(json)
      return []
    })
  )
