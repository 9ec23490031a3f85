// The closing line of `pnpm test` (scripts/test.sh): every step and every package's vitest report
// (test-results/vitest.json) added up into "N passed, N failed" (", N skipped" where any were skipped).
//
// It never says "0 failed" when anything failed. A failure is, each counted and named above the line:
// - a failed step (setup, lint, typecheck, chaos, ...; from the --steps file scripts/test.sh writes);
// - a failed test;
// - a test file that failed without a failed test (its setup or import threw: a database down, a
//   provider that did not start, a browser missing), or a report whose `success` is false for any
//   other reason;
// - a package with tests that wrote no report (its run never finished);
// - a skipped test that scripts/expected-skips.json does not list (a new skip hides a test).
// Exits non-zero when anything failed or no test passed at all.
//
//   node scripts/test-summary.mjs [--steps FILE] [--filter=NAME] [--root DIR]
import { existsSync, readdirSync, readFileSync } from "node:fs"
import { join, relative } from "node:path"
import { fileURLToPath } from "node:url"

/** Reads each step's "name<TAB>exit code<TAB>seconds" line. */
export const readSteps = (file) =>
  existsSync(file)
    ? readFileSync(file, "utf8")
        .split("\n")
        .filter((line) => line.trim() !== "")
        .map((line) => {
          const [name, code, seconds] = line.split("\t")
          return { name, code: Number(code), seconds: Number(seconds) }
        })
    : []

/** The workspace's packages with their names, from packages/*, apps/*, tooling/* and bench. */
export const workspacePackages = (root) => {
  const dirs = ["packages", "apps", "tooling"]
    .filter((dir) => existsSync(join(root, dir)))
    .flatMap((dir) => readdirSync(join(root, dir)).map((name) => join(dir, name)))
  if (existsSync(join(root, "bench", "package.json"))) dirs.push("bench")
  return dirs
    .filter((dir) => existsSync(join(root, dir, "package.json")))
    .map((dir) => ({ dir, name: JSON.parse(readFileSync(join(root, dir, "package.json"), "utf8")).name }))
}

const matchesSkip = (entry, skip, env) =>
  entry.file === skip.file &&
  (entry.test === skip.test || (entry.testPrefix !== undefined && skip.test.startsWith(entry.testPrefix))) &&
  // a skip that is expected only while a variable is unset (a real Vault's address) fails once it is set
  (entry.expectedOnlyWithout === undefined ||
    entry.expectedOnlyWithout.some((name) => (env[name] ?? "") === ""))

/**
 * Adds everything up. Returns the counts, the named failures, and the closing line.
 * `expectedSkips`: [{ file, test | testPrefix, reason, expectedOnlyWithout? }], file relative to the
 * workspace root; `env` the variables `expectedOnlyWithout` names.
 */
export const summarize = ({ root, steps, expectedSkips, filter, env = {} }) => {
  let passed = 0
  let failedTests = 0
  let skipped = 0
  const failures = []
  const skips = []

  const packages = workspacePackages(root).filter(
    (pkg) => filter === undefined || pkg.name === filter || pkg.dir === filter
  )
  for (const { dir } of packages) {
    const report = join(root, dir, "test-results", "vitest.json")
    if (!existsSync(report)) {
      if (existsSync(join(root, dir, "test"))) {
        failures.push(`${dir}: has tests but wrote no report (its run did not finish, or did not start)`)
      }
      continue
    }
    let json
    try {
      json = JSON.parse(readFileSync(report, "utf8"))
    } catch (error) {
      failures.push(`${dir}: its report ${relative(root, report)} is not JSON (${error.message})`)
      continue
    }
    passed += json.numPassedTests ?? 0
    skipped += (json.numPendingTests ?? 0) + (json.numTodoTests ?? 0)
    let explained = 0
    for (const file of json.testResults ?? []) {
      const path = relative(root, file.name)
      const assertions = file.assertionResults ?? []
      const failedHere = assertions.filter((a) => a.status === "failed")
      for (const test of failedHere) failures.push(`${path} > ${test.fullName}: failed`)
      failedTests += failedHere.length
      explained += failedHere.length
      if (file.status === "failed" && failedHere.length === 0) {
        const why = (file.message ?? "").split("\n")[0].slice(0, 200)
        failures.push(`${path}: the file failed without a failed test${why ? ` (${why})` : ""}`)
        explained += 1
      }
      for (const test of assertions) {
        if (test.status === "skipped" || test.status === "pending" || test.status === "todo") {
          skips.push({ file: path, test: test.fullName })
        }
      }
    }
    if (json.success === false && explained === 0) {
      failures.push(`${dir}: vitest reported success: false with no failed test or file`)
    }
  }

  for (const skip of skips) {
    if (!expectedSkips.some((entry) => matchesSkip(entry, skip, env))) {
      failures.push(`${skip.file} > ${skip.test}: skipped, and scripts/expected-skips.json does not list it`)
    }
  }

  // A failed step counts once, named. The tests step is the exception when the reports already name
  // what failed in it (each failed test or file counts instead): it would count the same failure twice.
  const explainedByReports = failures.length > 0
  const stepFailures = steps
    .filter((step) => step.code !== 0 && !(step.name === "tests" && explainedByReports))
    .map((step) => `step ${step.name} failed (exit ${step.code})`)
  failures.unshift(...stepFailures)

  const failed = failures.length
  const line = `${passed} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ""}`
  return { passed, failed, failedTests, skipped, failures, line }
}

const main = () => {
  const args = process.argv.slice(2)
  const value = (flag) => {
    const inline = args.find((arg) => arg.startsWith(`${flag}=`))
    if (inline !== undefined) return inline.slice(flag.length + 1)
    const at = args.indexOf(flag)
    return at >= 0 ? args[at + 1] : undefined
  }
  const root = value("--root") ?? process.cwd()
  const stepsFile = value("--steps")
  const steps = stepsFile === undefined ? [] : readSteps(stepsFile)
  const skipsFile = join(root, "scripts", "expected-skips.json")
  const expectedSkips = existsSync(skipsFile) ? JSON.parse(readFileSync(skipsFile, "utf8")).skips : []
  const result = summarize({ root, steps, expectedSkips, filter: value("--filter"), env: process.env })

  for (const step of steps) {
    console.log(`${step.code === 0 ? "ok    " : "FAILED"} ${step.name} (${step.seconds} s)`)
  }
  if (result.failures.length > 0) {
    console.log(`\nwhat failed (${result.failures.length}):`)
    for (const failure of result.failures) console.log(`  - ${failure}`)
    console.log("")
  }
  console.log(result.line)
  process.exit(result.failed > 0 || result.passed === 0 ? 1 : 0)
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) main()
