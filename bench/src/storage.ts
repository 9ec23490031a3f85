/**
 * Storage benchmark: latency of `get` and `compareAndSet` through each SQL store's own GrantStore driver
 * (one sequential caller, random keys), first with 10,000 grants, then again after a bulk load to
 * 1,000,000. Every figure is also printed as a ratio to its 10,000-grant baseline measured in the same
 * run on the same machine. Results go to `bench/results/storage.json`.
 *
 *   pnpm bench                                             # from the root, through turbo
 *   pnpm --filter @token-broker/bench bench
 *   BENCH_GRANTS=100000 BENCH_BACKENDS=sqlite pnpm --filter @token-broker/bench bench
 *
 * Environment: `BENCH_GRANTS` (default 1000000; the baseline is 10,000, or a tenth of a smaller
 * BENCH_GRANTS), `BENCH_BACKENDS` (default `sqlite,postgres,mysql`), `DATABASE_URL` (default
 * `postgres://postgres@127.0.0.1:5432/test`; a fresh schema is created and dropped), `MARIADB_URL`
 * (default `mysql://root@127.0.0.1:3306/test`; a fresh database is created and dropped).
 */
import { randomBytes } from "node:crypto"
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { cpus, tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { performance } from "node:perf_hooks"
import { fileURLToPath } from "node:url"
import type * as SqlClient from "@effect/sql/SqlClient"
import { GrantStore } from "@token-broker/core"
import { Effect, ManagedRuntime, Option } from "effect"
import { benchKey, benchRecord, prng } from "./internal/records.js"
import { describeStore, migrateStore, storeLayer, withoutCredentials } from "./StoreSpec.js"
import { dropSchema, insertBatch, type SqlStoreSpec, settle, sqlLayer } from "./StoreSql.js"

const FULL = Number(process.env.BENCH_GRANTS ?? 1_000_000)
if (!Number.isInteger(FULL) || FULL < 1_000) throw new Error("BENCH_GRANTS must be an integer >= 1000")
const BASELINE = Math.min(10_000, Math.floor(FULL / 10))
const BACKENDS = (process.env.BENCH_BACKENDS ?? "sqlite,postgres,mysql").split(",").map((b) => b.trim())
const DATABASE_URL = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test"
const MARIADB_URL = process.env.MARIADB_URL ?? "mysql://root@127.0.0.1:3306/test"
const GET_OPS = 5_000
const CAS_OPS = 2_000
const WARMUP = 2_000
const ROUNDS = 5
const RESULTS = join(dirname(fileURLToPath(import.meta.url)), "..", "results", "storage.json")

interface Figures {
  readonly p50Us: number
  readonly p99Us: number
  readonly meanUs: number
}

/** The median over rounds of each figure (robust to a round disturbed by other work on the machine). */
interface Latency extends Figures {
  readonly ops: number
  readonly rounds: ReadonlyArray<Figures>
}

interface Phase {
  readonly grants: number
  readonly get: Latency
  readonly compareAndSet: Latency
}

interface BackendResult {
  readonly backend: string
  readonly store: string
  readonly loadSeconds: number
  readonly loadRowsPerSecond: number
  readonly phases: ReadonlyArray<Phase>
  /** Each figure at the full size divided by the same figure at the baseline. */
  readonly ratios: {
    readonly get: { readonly p50: number; readonly p99: number; readonly mean: number }
    readonly compareAndSet: { readonly p50: number; readonly p99: number; readonly mean: number }
  }
}

const us = (ms: number) => Math.round(ms * 1000 * 10) / 10

const figuresOf = (samples: Float64Array): Figures => {
  const sorted = Float64Array.from(samples).sort()
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN
  const mean = sorted.reduce((sum, x) => sum + x, 0) / sorted.length
  return { p50Us: us(at(0.5)), p99Us: us(at(0.99)), meanUs: us(mean) }
}

const median = (values: ReadonlyArray<number>) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN
}

const latencyOf = (rounds: ReadonlyArray<Figures>, ops: number): Latency => ({
  ops,
  p50Us: median(rounds.map((r) => r.p50Us)),
  p99Us: median(rounds.map((r) => r.p99Us)),
  meanUs: median(rounds.map((r) => r.meanUs)),
  rounds
})

type Op = (i: number) => Effect.Effect<unknown, unknown>

/** `ops` timed calls of `op` on random grants picked by `pick`. */
const sample = (ops: number, pick: () => number, op: Op): Effect.Effect<Float64Array, unknown> =>
  Effect.gen(function* () {
    const samples = new Float64Array(ops)
    for (let k = 0; k < ops; k++) {
      const i = pick()
      const started = performance.now()
      yield* op(i)
      samples[k] = performance.now() - started
    }
    return samples
  })

/**
 * Measures get and compareAndSet with `grants` rows loaded, on random keys: a warm-up, then ROUNDS
 * rounds that alternate the two operations. `versions` tracks the rows already rewritten.
 */
const measure = (store: GrantStore.GrantStoreDriver, grants: number, versions: Map<number, number>) =>
  Effect.gen(function* () {
    const random = prng(grants)
    const pick = () => Math.floor(random() * grants)
    const get: Op = (i) =>
      Effect.flatMap(store.get(benchKey(i)), (found) =>
        Option.isSome(found) ? Effect.void : Effect.dieMessage(`grant ${i} is missing`)
      )
    const compareAndSet: Op = (i) => {
      const version = versions.get(i) ?? 1
      const next = benchRecord(i, version + 1)
      return Effect.flatMap(store.compareAndSet(benchKey(i), version, next), (result) => {
        if (result !== "ok") return Effect.dieMessage(`compareAndSet of grant ${i} conflicted`)
        versions.set(i, version + 1)
        return Effect.void
      })
    }
    yield* sample(WARMUP, pick, get)
    yield* sample(WARMUP / 4, pick, compareAndSet)
    const gets: Array<Figures> = []
    const writes: Array<Figures> = []
    for (let round = 0; round < ROUNDS; round++) {
      gets.push(figuresOf(yield* sample(GET_OPS / ROUNDS, pick, get)))
      writes.push(figuresOf(yield* sample(CAS_OPS / ROUNDS, pick, compareAndSet)))
    }
    return { grants, get: latencyOf(gets, GET_OPS), compareAndSet: latencyOf(writes, CAS_OPS) }
  })

const BATCH = 5_000

/**
 * Bulk-loads grants [from, to) straight into the tables, printing progress. A database server gets two batches
 * in flight (the server indexes one while this process builds the next); SQLite runs in this process.
 */
const load = (spec: SqlStoreSpec, from: number, to: number) =>
  Effect.gen(function* () {
    const started = performance.now()
    let lastReport = started
    let done = from
    const starts = Array.from({ length: Math.ceil((to - from) / BATCH) }, (_, k) => from + k * BATCH)
    yield* Effect.forEach(
      starts,
      (start) => {
        const end = Math.min(to, start + BATCH)
        return Effect.suspend(() =>
          insertBatch(
            spec,
            Array.from({ length: end - start }, (_, k) => benchRecord(start + k))
          )
        ).pipe(
          Effect.tap(() =>
            Effect.sync(() => {
              done += end - start
              const now = performance.now()
              if (now - lastReport > 10_000 || done === to) {
                lastReport = now
                console.log(
                  `  ${spec.kind}: ${done.toLocaleString("en-US")} / ${to.toLocaleString("en-US")} grants loaded (${((now - started) / 1000).toFixed(1)} s)`
                )
              }
            })
          )
        )
      },
      { concurrency: spec.kind === "sqlite" ? 1 : 2, discard: true }
    )
    return (performance.now() - started) / 1000
  })

const ratio = (full: number, base: number) => Math.round((full / base) * 100) / 100

const prepare = (backend: string): { spec: SqlStoreSpec; cleanup: () => Promise<void> } => {
  switch (backend) {
    case "sqlite": {
      const dir = mkdtempSync(join(tmpdir(), "tb-bench-storage-"))
      return {
        spec: { kind: "sqlite", options: { filename: join(dir, "grants.db") } },
        cleanup: async () => rmSync(dir, { recursive: true, force: true })
      }
    }
    case "postgres": {
      const spec: SqlStoreSpec = {
        kind: "postgres",
        options: { url: DATABASE_URL, schema: `tb_bench_storage_${randomBytes(5).toString("hex")}` }
      }
      return {
        spec,
        cleanup: () => Effect.runPromise(Effect.provide(dropSchema(spec), sqlLayer(spec)))
      }
    }
    case "mysql": {
      const url = new URL(MARIADB_URL)
      url.pathname = `/tb_bench_storage_${randomBytes(5).toString("hex")}`
      const spec: SqlStoreSpec = { kind: "mysql", options: { url: url.href } }
      return {
        spec,
        cleanup: () => Effect.runPromise(Effect.provide(dropSchema(spec), sqlLayer(spec)))
      }
    }
    default:
      throw new Error(`unknown backend "${backend}" in BENCH_BACKENDS (sqlite, postgres, mysql)`)
  }
}

const run = async (backend: string, cleanups: Array<() => Promise<void>>): Promise<BackendResult> => {
  const { spec, cleanup } = prepare(backend)
  cleanups.push(cleanup)
  console.log(`\n${describeStore(spec)}`)
  try {
    await Effect.runPromise(migrateStore(spec))
  } catch (cause) {
    throw new Error(
      spec.kind === "postgres"
        ? `PostgreSQL does not answer at ${withoutCredentials(DATABASE_URL)} (set DATABASE_URL, or BENCH_BACKENDS=sqlite): ${String(cause)}`
        : spec.kind === "mysql"
          ? `MariaDB does not answer at ${withoutCredentials(MARIADB_URL)} (set MARIADB_URL, or leave mysql out of BENCH_BACKENDS): ${String(cause)}`
          : `cannot create the SQLite file: ${String(cause)}`
    )
  }
  const sql = ManagedRuntime.make(sqlLayer(spec))
  const stores = ManagedRuntime.make(storeLayer(spec))
  try {
    const loadSql = <A, E>(effect: Effect.Effect<A, E, SqlClient.SqlClient>) => sql.runPromise(effect)
    const store = await stores.runPromise(GrantStore.GrantStore)
    let loadSeconds = await loadSql(load(spec, 0, BASELINE))
    await loadSql(settle(spec))
    // The loader writes storage-sql's encoding itself: check that the store reads back what was built.
    const probe = await stores.runPromise(store.get(benchKey(BASELINE - 1)))
    if (JSON.stringify(Option.getOrNull(probe)) !== JSON.stringify(benchRecord(BASELINE - 1))) {
      throw new Error("the bulk loader's rows do not read back as the records it was given")
    }
    const versions = new Map<number, number>()
    const base = await stores.runPromise(measure(store, BASELINE, versions))
    loadSeconds += await loadSql(load(spec, BASELINE, FULL))
    await loadSql(settle(spec))
    const full = await stores.runPromise(measure(store, FULL, versions))
    const loaded = FULL
    return {
      backend,
      store: describeStore(spec),
      loadSeconds: Math.round(loadSeconds * 10) / 10,
      loadRowsPerSecond: Math.round(loaded / loadSeconds),
      phases: [base, full],
      ratios: {
        get: {
          p50: ratio(full.get.p50Us, base.get.p50Us),
          p99: ratio(full.get.p99Us, base.get.p99Us),
          mean: ratio(full.get.meanUs, base.get.meanUs)
        },
        compareAndSet: {
          p50: ratio(full.compareAndSet.p50Us, base.compareAndSet.p50Us),
          p99: ratio(full.compareAndSet.p99Us, base.compareAndSet.p99Us),
          mean: ratio(full.compareAndSet.meanUs, base.compareAndSet.meanUs)
        }
      }
    }
  } finally {
    await stores.dispose()
    await sql.dispose()
  }
}

const pad = (value: string, width: number) => value.padStart(width)

const table = (results: ReadonlyArray<BackendResult>) => {
  const header = [
    "backend ",
    "operation    ",
    pad("grants", 10),
    pad("p50 µs", 9),
    pad("p99 µs", 9),
    pad("mean µs", 9),
    pad("p50 ×", 7),
    pad("p99 ×", 7),
    pad("mean ×", 7)
  ].join("  ")
  const lines = [header, "-".repeat(header.length)]
  for (const result of results) {
    for (const operation of ["get", "compareAndSet"] as const) {
      const [base] = result.phases
      for (const phase of result.phases) {
        const figures = phase[operation]
        const baseline = base?.[operation] ?? figures
        lines.push(
          [
            result.backend.padEnd(8),
            operation.padEnd(13),
            pad(phase.grants.toLocaleString("en-US"), 10),
            pad(figures.p50Us.toFixed(1), 9),
            pad(figures.p99Us.toFixed(1), 9),
            pad(figures.meanUs.toFixed(1), 9),
            pad(ratio(figures.p50Us, baseline.p50Us).toFixed(2), 7),
            pad(ratio(figures.p99Us, baseline.p99Us).toFixed(2), 7),
            pad(ratio(figures.meanUs, baseline.meanUs).toFixed(2), 7)
          ].join("  ")
        )
      }
    }
  }
  return lines.join("\n")
}

const main = async () => {
  console.log(
    `storage benchmark: ${BASELINE.toLocaleString("en-US")} then ${FULL.toLocaleString("en-US")} grants; ` +
      `${GET_OPS} get and ${CAS_OPS} compareAndSet calls per size in ${ROUNDS} alternating rounds, one sequential caller, random keys`
  )
  const cleanups: Array<() => Promise<void>> = []
  const cleanAll = async () => {
    for (const cleanup of cleanups.splice(0)) {
      await cleanup().catch((error: unknown) => console.error(`cleanup failed: ${String(error)}`))
    }
  }
  process.once("SIGINT", () => {
    void cleanAll().then(() => process.exit(130))
  })
  const started = performance.now()
  const results: Array<BackendResult> = []
  try {
    for (const backend of BACKENDS) {
      results.push(await run(backend, cleanups))
      await cleanAll()
    }
  } finally {
    await cleanAll()
  }
  console.log(`\n${table(results)}`)
  for (const result of results) {
    console.log(
      `${result.backend}: bulk load ${result.loadRowsPerSecond.toLocaleString("en-US")} grants/s (${result.loadSeconds} s for ${FULL.toLocaleString("en-US")})`
    )
  }
  console.log(
    `figures: the median over ${ROUNDS} rounds; × = the figure divided by the same figure at the baseline size, measured in this run`
  )
  mkdirSync(dirname(RESULTS), { recursive: true })
  writeFileSync(
    RESULTS,
    `${JSON.stringify(
      {
        benchmark: "storage",
        date: new Date().toISOString(),
        machine: { node: process.version, cpus: cpus().length, cpu: cpus()[0]?.model ?? "unknown" },
        grants: { baseline: BASELINE, full: FULL },
        ops: { get: GET_OPS, compareAndSet: CAS_OPS, warmup: WARMUP, rounds: ROUNDS },
        totalSeconds: Math.round((performance.now() - started) / 100) / 10,
        results
      },
      null,
      2
    )}\n`
  )
  console.log(`written to ${RESULTS}`)
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : String(error))
  process.exitCode = 1
})
