/**
 * The chaos suite: scenarios against real processes (broker workers, dev-idp, SQLite files,
 * PostgreSQL), each printing what it did and its outcome, then one table. Exits non-zero when a grant
 * was lost where no loss was unavoidable, a wrong token was served, or a scenario failed otherwise.
 *
 *   pnpm chaos                      every scenario, SQLite, PostgreSQL, MariaDB and Vault (its emulator)
 *   pnpm chaos -- --short           the CI version (a few minutes)
 *   pnpm chaos -- --only=kill,pause scenarios by name: kill, pause, upstream, database, explorer
 *   pnpm chaos -- --backends=mysql  the scenarios that take a backend, on these only (sqlite, postgres, mysql, vault)
 */
import { mkdirSync, writeFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import type { StoreKind } from "../src/StoreSpec.js"
import { databaseUrl } from "../test/support/backends.js"
import { databaseRestart } from "./databaseRestart.js"
import { explorer } from "./explorer.js"
import { allWorkerOutput, chaosSecrets, killAllChaosWorkers, secretScanRow } from "./harness.js"
import { killAtStep } from "./killAtStep.js"
import { leasePaused } from "./leasePaused.js"
import { type ChaosContext, type ScenarioRow, table } from "./report.js"
import { upstreamFaults } from "./upstreamFaults.js"

const RESULTS = join(dirname(fileURLToPath(import.meta.url)), "..", "results")
const args = process.argv.slice(2)
const short = args.includes("--short")
const only = args
  .find((arg) => arg.startsWith("--only="))
  ?.slice("--only=".length)
  .split(",")
const ALL_BACKENDS: ReadonlyArray<StoreKind> = ["sqlite", "postgres", "mysql", "vault"]
const chosen = args
  .find((arg) => arg.startsWith("--backends="))
  ?.slice("--backends=".length)
  .split(",")
const unknown = chosen?.filter((b) => !ALL_BACKENDS.includes(b as StoreKind)) ?? []
if (unknown.length > 0) {
  console.error(`unknown backend(s) ${unknown.join(", ")} in --backends (known: ${ALL_BACKENDS.join(", ")})`)
  process.exit(2)
}
// Vault is its emulator of the documented HTTP API, served from this process; the brokers reach it over HTTP
const ctx: ChaosContext = {
  short,
  backends: chosen === undefined ? ALL_BACKENDS : ALL_BACKENDS.filter((b) => chosen.includes(b))
}

const scenarios: ReadonlyArray<readonly [string, (ctx: ChaosContext) => Promise<Array<ScenarioRow>>]> = [
  ["kill", killAtStep],
  ["pause", leasePaused],
  ["upstream", upstreamFaults],
  ["database", databaseRestart],
  ["explorer", explorer]
]

const stopEverything = async () => {
  await killAllChaosWorkers()
}
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    void stopEverything().finally(() => process.exit(130))
  })
}

const started = Date.now()
console.log(
  `chaos suite${short ? " (short)" : ""}: backends ${ctx.backends.join(", ")}; PostgreSQL ${databaseUrl.replace(/\/\/[^@/]*@/, "//")}`
)
const rows: Array<ScenarioRow> = []
for (const [name, scenario] of scenarios) {
  if (only !== undefined && !only.includes(name)) continue
  try {
    rows.push(...(await scenario(ctx)))
  } catch (error) {
    rows.push({
      scenario: name,
      backend: "-",
      runs: 0,
      lost: 0,
      unavoidable: 0,
      wrongTokens: 0,
      ok: false,
      outcome: `the scenario could not run: ${error instanceof Error ? error.message.split("\n")[0] : String(error)}`
    })
    console.error(error)
  } finally {
    await stopEverything()
  }
}

// No secret of the run (stored refresh tokens, PKCE verifiers, served access tokens, client secrets,
// keys), in any encoding, and no credential-shaped string in anything the workers printed.
rows.push(secretScanRow(allWorkerOutput(), chaosSecrets))

const seconds = Math.round((Date.now() - started) / 1000)
console.log(`\nchaos suite${short ? " (short)" : ""}: ${seconds} s\n`)
if (only === undefined && chosen === undefined) {
  mkdirSync(RESULTS, { recursive: true })
  writeFileSync(
    join(RESULTS, "chaos.json"),
    `${JSON.stringify({ command: `pnpm chaos${short ? " --short" : ""}`, date: new Date(started).toISOString(), seconds, rows }, null, 2)}\n`
  )
}
console.log(table(rows))
const failed = rows.filter((row) => !row.ok)
console.log(
  failed.length === 0
    ? "\nevery scenario passed: no grant lost except where reported as an unavoidable lost rotation, no wrong token"
    : `\n${failed.length} scenario(s) failed`
)
process.exit(failed.length === 0 ? 0 : 1)
