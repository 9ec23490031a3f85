import type { StoreKind } from "../src/StoreSpec.js"

/** What every chaos scenario needs to know about the run. */
export interface ChaosContext {
  /** The CI version: fewer runs and backends, shorter phases. */
  readonly short: boolean
  readonly backends: ReadonlyArray<StoreKind>
}

/** One line of the final table. */
export interface ScenarioRow {
  readonly scenario: string
  readonly backend: string
  readonly runs: number
  /** Grants that no longer yield tokens afterwards. */
  readonly lost: number
  /** Of those, lost rotations that were physically unavoidable and reported as ConsentRequired rotation_lost. */
  readonly unavoidable: number
  readonly wrongTokens: number
  readonly ok: boolean
  /** What happened, in a few words; the failures when not ok. */
  readonly outcome: string
}

export const say = (scenario: string, message: string) => console.log(`[${scenario}] ${message}`)

const pad = (text: string, width: number) =>
  text.length >= width ? text : text + " ".repeat(width - text.length)

export const table = (rows: ReadonlyArray<ScenarioRow>): string => {
  const header = ["scenario", "backend", "runs", "grants lost", "wrong tokens", "outcome"]
  const lines = rows.map((row) => [
    row.scenario,
    row.backend,
    String(row.runs),
    row.lost === 0 ? "0" : `${row.lost} (${row.unavoidable} unavoidable, rotation_lost)`,
    String(row.wrongTokens),
    `${row.ok ? "PASS" : "FAIL"} ${row.outcome}`
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((line) => (line[i] ?? "").length)))
  const render = (cells: ReadonlyArray<string>) =>
    `| ${cells.map((cell, i) => pad(cell, widths[i] ?? 0)).join(" | ")} |`
  return [render(header), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...lines.map(render)].join(
    "\n"
  )
}
