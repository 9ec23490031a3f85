/**
 * `pnpm bench`: every benchmark of the project in one run, one after the other (never two at once on
 * this 2-core machine), each as a child process: every workspace package's own `bench` script (core's
 * cache hit, the HTTP broker against bare fastify, the MCP server's tools/call against a bare MCP SDK
 * server, the storage bench at 1,000,000 grants, the CLI's start-up) plus this package's refresh storm and memory benches. Their `BENCH_JSON {...}` lines (and
 * the storage bench's results file) are collected into `bench/results/latest.json`, and `BENCHMARKS.md`
 * at the repository root is written from that one run: the machine, the command, and every figure with
 * the baseline measured in the same run and the ratio between them.
 *
 *   pnpm bench                                   (from the repository root)
 */
import { spawn } from "node:child_process"
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import { cpus, freemem, totalmem } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { renderBenchmarks } from "./BenchmarksMarkdown.js"

const here = dirname(fileURLToPath(import.meta.url))
const PACKAGE_DIR = join(here, "..")
const ROOT = join(PACKAGE_DIR, "..")
const RESULTS = join(PACKAGE_DIR, "results")

export interface StepResult {
  readonly id: string
  readonly command: string
  readonly exitCode: number | null
  readonly seconds: number
  readonly json: ReadonlyArray<Record<string, unknown>>
}

const run = (id: string, command: string, args: ReadonlyArray<string>, cwd: string): Promise<StepResult> =>
  new Promise((resolve) => {
    const started = Date.now()
    console.log(`\n=== ${id}: ${command} ${args.join(" ")} (in ${cwd.replace(ROOT, ".") || "."})`)
    const child = spawn(command, [...args], { cwd, stdio: ["ignore", "pipe", "pipe"], env: process.env })
    let text = ""
    child.stdout.on("data", (chunk: Buffer) => {
      text += chunk.toString("utf8")
      process.stdout.write(chunk)
    })
    child.stderr.on("data", (chunk: Buffer) => process.stderr.write(chunk))
    child.on("close", (code) => {
      const json = text
        .split("\n")
        .filter((line) => line.startsWith("BENCH_JSON "))
        .flatMap((line) => {
          try {
            return [JSON.parse(line.slice("BENCH_JSON ".length)) as Record<string, unknown>]
          } catch {
            return []
          }
        })
      resolve({
        id,
        command: `${command} ${args.join(" ")}`,
        exitCode: code,
        seconds: Math.round((Date.now() - started) / 1000),
        json
      })
    })
  })

/** Workspace packages with a `bench` script, in a stable order (this package's own storage bench last). */
const packageBenches = (): Array<{ name: string; dir: string }> => {
  const found: Array<{ name: string; dir: string }> = []
  for (const parent of ["packages", "apps"]) {
    const base = join(ROOT, parent)
    if (!existsSync(base)) continue
    for (const entry of readdirSync(base).sort()) {
      const file = join(base, entry, "package.json")
      if (!existsSync(file)) continue
      const pkg = JSON.parse(readFileSync(file, "utf8")) as {
        name?: string
        scripts?: Record<string, string>
      }
      if (pkg.name !== undefined && pkg.scripts?.bench !== undefined)
        found.push({ name: pkg.name, dir: join(base, entry) })
    }
  }
  found.push({ name: "@token-broker/bench", dir: PACKAGE_DIR })
  return found
}

const started = new Date()
const steps: Array<StepResult> = []
for (const pkg of packageBenches()) {
  steps.push(await run(pkg.name, "pnpm", ["--filter", pkg.name, "run", "bench"], ROOT))
}
steps.push(
  await run("refresh-storm", process.execPath, ["--import", "tsx", "src/refreshStorm.ts"], PACKAGE_DIR)
)
steps.push(
  await run(
    "refresh-storm-memory",
    process.execPath,
    ["--expose-gc", "--import", "tsx", "src/stormMemory.ts", "10000"],
    PACKAGE_DIR
  )
)
// 100,000 pending calls in a process of its own, whose heap may not grow past 2 GiB
steps.push(
  await run(
    "refresh-storm-memory-100k",
    process.execPath,
    ["--expose-gc", "--max-old-space-size=2048", "--import", "tsx", "src/stormMemory.ts", "100000"],
    PACKAGE_DIR
  )
)
steps.push(
  await run("memory", process.execPath, ["--expose-gc", "--import", "tsx", "src/memory.ts"], PACKAGE_DIR)
)

const readJson = (file: string): unknown =>
  existsSync(join(RESULTS, file)) ? JSON.parse(readFileSync(join(RESULTS, file), "utf8")) : undefined

const cpu = cpus()
const latest = {
  date: started.toISOString(),
  command: [
    ...Object.entries(process.env)
      .filter(([name]) => name.startsWith("BENCH_") || name === "DATABASE_URL")
      .map(
        ([name, value]) =>
          `${name}=${name === "DATABASE_URL" ? (value ?? "").replace(/\/\/[^@/]*@/, "//") : value}`
      ),
    "pnpm bench"
  ].join(" "),
  machine: {
    cpus: cpu.length,
    cpu: cpu[0]?.model ?? "unknown",
    memoryGiB: Number((totalmem() / 2 ** 30).toFixed(1)),
    freeMemoryGiB: Number((freemem() / 2 ** 30).toFixed(1)),
    node: process.version,
    platform: `${process.platform} ${process.arch}`
  },
  totalSeconds: Math.round((Date.now() - started.getTime()) / 1000),
  steps,
  storage: readJson("storage.json"),
  chaos: readJson("chaos.json")
}
mkdirSync(RESULTS, { recursive: true })
writeFileSync(join(RESULTS, "latest.json"), `${JSON.stringify(latest, null, 2)}\n`)
writeFileSync(join(ROOT, "BENCHMARKS.md"), renderBenchmarks(latest))
console.log(`\nwritten: bench/results/latest.json and BENCHMARKS.md (${latest.totalSeconds} s in all)`)
const failed = steps.filter((step) => step.exitCode !== 0)
if (failed.length > 0) {
  console.error(`failed: ${failed.map((step) => `${step.id} (exit ${step.exitCode})`).join(", ")}`)
  process.exitCode = 1
}
