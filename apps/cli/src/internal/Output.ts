import { styleText } from "node:util"
import { Effect } from "effect"
import { CliEnvironment } from "./Environment.js"

/**
 * Output conventions: results on stdout (one value per line, or JSON with `--json`), everything meant for
 * the person - progress, hints, warnings - on stderr, so `$(token-broker token ...)` captures only the result.
 */

/** A line on stdout. */
export const printLine = (text: string): Effect.Effect<void, never, CliEnvironment> =>
  Effect.flatMap(CliEnvironment, (env) => Effect.sync(() => env.writeStdout(`${text}\n`)))

/** A value as indented JSON on stdout. */
export const printJson = (value: unknown): Effect.Effect<void, never, CliEnvironment> =>
  printLine(JSON.stringify(value, null, 2))

/** A line on stderr. */
export const printNote = (text: string): Effect.Effect<void, never, CliEnvironment> =>
  Effect.flatMap(CliEnvironment, (env) => Effect.sync(() => env.writeStderr(`${text}\n`)))

type Style = "green" | "red" | "yellow" | "bold" | "dim" | "cyan"

/** Text styled for stdout or stderr: plain unless that stream gets colour. */
export const styled = (
  stream: "stdout" | "stderr",
  style: Style,
  text: string
): Effect.Effect<string, never, CliEnvironment> =>
  Effect.map(CliEnvironment, (env) =>
    (stream === "stdout" ? env.colorStdout : env.colorStderr) ? styleText(style, text) : text
  )

/** `12345` -> `12,345`. */
export const formatCount = (n: number): string => n.toLocaleString("en-US")

/** Epoch ms -> ISO time, or "-" for none. */
export const formatTime = (ms: number | null | undefined): string =>
  ms === null || ms === undefined ? "-" : new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z")

/** Left-aligned columns, two spaces apart. */
export const table = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)))
  const line = (cells: ReadonlyArray<string>) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join("  ")
      .trimEnd()
  return [line(header), ...rows.map(line)].join("\n")
}
