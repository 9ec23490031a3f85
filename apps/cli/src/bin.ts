#!/usr/bin/env node
/**
 * The `token-broker` executable. `token-broker --help` (and `-h`) prints the help the build recorded
 * from this same CLI (`dist/help.json`, written by build.mjs) without loading the CLI: Effect and
 * @effect/cli are most of what a start costs, and the bare help needs neither. Every other command, and
 * a run from source where no recording exists, loads the whole CLI (`main.ts`).
 */
import { readFileSync } from "node:fs"
import { colorFor } from "./internal/color.js"

const args = process.argv.slice(2)
const recorded = (): { readonly plain: string; readonly color: string } | undefined => {
  try {
    return JSON.parse(readFileSync(new URL("./help.json", import.meta.url), "utf8"))
  } catch {
    return undefined
  }
}
const help = args.length === 1 && (args[0] === "--help" || args[0] === "-h") ? recorded() : undefined
if (help !== undefined) {
  process.stdout.write(colorFor(process.stdout.isTTY === true, process.env) ? help.color : help.plain)
} else {
  await import("./main.js")
}
