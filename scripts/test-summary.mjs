// Adds up every package's vitest JSON report (test-results/vitest.json) into one closing line:
// "N passed, N failed" (", N skipped" where any were skipped). Exits non-zero when a test failed,
// when a package that has tests wrote no report, or when no test ran at all.
import { existsSync, readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"

const roots = ["packages", "apps"].filter((dir) => existsSync(dir))
const packages = roots.flatMap((root) => readdirSync(root).map((name) => join(root, name)))
if (existsSync("bench/package.json")) packages.push("bench")

let passed = 0
let failed = 0
let skipped = 0
const missing = []
for (const dir of packages) {
  const hasTests = existsSync(join(dir, "test"))
  const report = join(dir, "test-results", "vitest.json")
  if (!existsSync(report)) {
    if (hasTests) missing.push(dir)
    continue
  }
  const json = JSON.parse(readFileSync(report, "utf8"))
  passed += json.numPassedTests
  failed += json.numFailedTests
  skipped += json.numPendingTests + json.numTodoTests
  // A suite that failed to load counts as a failure even when it declared no test.
  failed += json.testResults.filter(
    (file) => file.status === "failed" && file.assertionResults.length === 0
  ).length
}
for (const dir of missing) console.log(`${dir}: has tests but wrote no report (the run did not finish)`)
failed += missing.length
console.log(`${passed} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ""}`)
process.exit(failed > 0 || passed === 0 ? 1 : 0)
