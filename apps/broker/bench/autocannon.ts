/** The HTTP benchmark's load runs (autocannon's command line, a process per run) and their statistics. */
import { spawn } from "node:child_process"
import { readFile } from "node:fs/promises"
import { createRequire } from "node:module"

const autocannonBin = createRequire(import.meta.url).resolve("autocannon/autocannon.js")

export interface Load {
  readonly rps: number
  readonly p99ms: number
  readonly requests: number
  readonly failures: number
}

/** One measurement by autocannon's command line, in a process of its own. */
export const autocannon = async (options: {
  readonly connections: number
  readonly url: string
  readonly headers: Record<string, string>
  readonly duration: number
  readonly bodyFile?: string | undefined
}): Promise<Load> => {
  const { connections, url, headers, duration, bodyFile } = options
  const child = spawn(
    process.execPath,
    [
      autocannonBin,
      "--json",
      "-c",
      String(connections),
      "-d",
      String(duration),
      "-m",
      "POST",
      ...Object.entries(headers).flatMap(([k, v]) => ["-H", `${k}=${v}`]),
      ...(bodyFile === undefined ? [] : ["-i", bodyFile]),
      url
    ],
    { stdio: ["ignore", "pipe", "ignore"] }
  )
  let out = ""
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    out += chunk
  })
  const code = await new Promise<number | null>((resolve) => child.once("exit", resolve))
  if (code !== 0) throw new Error(`autocannon exited with code ${code}`)
  const json = JSON.parse(out) as {
    requests: { average: number; total: number }
    latency: { p99: number }
    non2xx: number
    errors: number
    timeouts: number
  }
  return {
    rps: json.requests.average,
    p99ms: json.latency.p99,
    requests: json.requests.total,
    failures: json.non2xx + json.errors + json.timeouts
  }
}

export const median = (values: ReadonlyArray<number>) => {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1
    ? (sorted[middle] ?? Number.NaN)
    : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2
}
export const spread = (values: ReadonlyArray<number>) => [Math.min(...values), Math.max(...values)]

/**
 * CPU time (user + system, microseconds) a process has used so far, from /proc (Linux; NaN elsewhere).
 * Unlike requests per second, it does not depend on how busy the rest of the machine is.
 */
export const cpuMicros = async (pid: number | undefined): Promise<number> => {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8")
    // the fields after the command name (which is in parentheses and may hold spaces)
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    // utime and stime are fields 14 and 15 of the line, in clock ticks (100 a second on Linux)
    return ((Number(fields[11]) + Number(fields[12])) * 1_000_000) / 100
  } catch {
    return Number.NaN
  }
}
