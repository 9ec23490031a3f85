/**
 * Start-up time of `token-broker --help` (the built CLI: the help recorded at build time, printed
 * without loading the CLI) and of `token-broker keys --help` (the whole CLI loaded, as for every
 * command) against a bare `node -e 0`, measured in one run, alternating the three so that machine load
 * hits all alike. Prints the means, the ratios and a `BENCH_JSON {...}` line.
 *
 *   pnpm --filter @token-broker/cli bench           # 20 runs of each
 *   RUNS=50 pnpm --filter @token-broker/cli bench
 */
import { spawnSync } from "node:child_process"
import { fileURLToPath } from "node:url"

const runs = Number(process.env.RUNS ?? 20)
const bin = fileURLToPath(new URL("../dist/bin.js", import.meta.url))

const time = (args: ReadonlyArray<string>): number => {
  const start = process.hrtime.bigint()
  const result = spawnSync(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"] })
  const ms = Number(process.hrtime.bigint() - start) / 1e6
  if (result.status !== 0) throw new Error(`node ${args.join(" ")} exited ${result.status}: ${result.stderr}`)
  return ms
}

const cli: Array<number> = []
const whole: Array<number> = []
const bare: Array<number> = []
time([bin, "--help"]) // warm the file system cache
time([bin, "keys", "--help"])
for (let i = 0; i < runs; i++) {
  bare.push(time(["-e", "0"]))
  cli.push(time([bin, "--help"]))
  whole.push(time([bin, "keys", "--help"]))
}
const mean = (xs: ReadonlyArray<number>) => xs.reduce((a, b) => a + b, 0) / xs.length
const median = (xs: ReadonlyArray<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0
const result = {
  runs,
  cliHelpMeanMs: Math.round(mean(cli)),
  cliHelpMedianMs: Math.round(median(cli)),
  nodeBareMeanMs: Math.round(mean(bare)),
  nodeBareMedianMs: Math.round(median(bare)),
  ratio: Number((mean(cli) / mean(bare)).toFixed(2)),
  wholeCliMeanMs: Math.round(mean(whole)),
  wholeCliRatio: Number((mean(whole) / mean(bare)).toFixed(2)),
  overheadMs: Math.round(mean(cli) - mean(bare))
}
console.log(
  `token-broker --help: mean ${result.cliHelpMeanMs} ms (median ${result.cliHelpMedianMs} ms) over ${runs} runs`
)
console.log(`node -e 0:           mean ${result.nodeBareMeanMs} ms (median ${result.nodeBareMedianMs} ms)`)
console.log(`ratio ${result.ratio}x; the CLI adds ${result.overheadMs} ms to a bare node start`)
console.log(
  `token-broker keys --help (the whole CLI loaded): mean ${result.wholeCliMeanMs} ms, ratio ${result.wholeCliRatio}x`
)
console.log(`BENCH_JSON ${JSON.stringify({ name: "cli-startup", ...result })}`)
