// Controls for the CI guards of scripts/test-summary.mjs: each deliberately broken run must turn the
// closing line red and name what broke. The first control runs real vitest (the version the workspace
// uses) on a throwaway package, so the report shape the guards read is vitest's own, not a copy of it.
import assert from "node:assert/strict"
import { execFileSync } from "node:child_process"
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { after, describe, test } from "node:test"
import { fileURLToPath } from "node:url"
import { summarize } from "./test-summary.mjs"

const repo = join(dirname(fileURLToPath(import.meta.url)), "..")
const vitestBin = join(repo, "packages", "core", "node_modules", ".bin", "vitest")
const made = []
after(() => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true })
})

/** A throwaway workspace with one package `packages/p` holding the given test files. */
const workspace = (files) => {
  const root = mkdtempSync(join(tmpdir(), "tb-summary-"))
  made.push(root)
  const pkg = join(root, "packages", "p")
  mkdirSync(join(pkg, "test"), { recursive: true })
  writeFileSync(join(pkg, "package.json"), JSON.stringify({ name: "p", type: "module" }))
  for (const [name, text] of Object.entries(files)) writeFileSync(join(pkg, "test", name), text)
  return { root, pkg }
}

const runVitest = (pkg) => {
  try {
    execFileSync(
      vitestBin,
      ["run", "--root", pkg, "--reporter=json", "--outputFile=test-results/vitest.json"],
      { cwd: pkg, stdio: "pipe" }
    )
  } catch {
    // a failing run is the point of most controls; the report is what is checked
  }
}

/** Writes `pkg`'s vitest JSON report; the counts left out are 0, the files left out none. */
const report = (pkg, { numPendingTests = 0, numTodoTests = 0, testResults = [], ...counts }) => {
  mkdirSync(join(pkg, "test-results"), { recursive: true })
  writeFileSync(
    join(pkg, "test-results", "vitest.json"),
    JSON.stringify({ ...counts, numPendingTests, numTodoTests, testResults })
  )
}

const fileResult = (root, name, status, assertionResults, message = "") => ({
  name: join(root, "packages", "p", "test", name),
  status,
  message,
  assertionResults
})

describe("the closing line never says 0 failed when something failed", () => {
  test("control (real vitest): a file whose setup throws, beside a passing file, is a named failure", () => {
    const { root, pkg } = workspace({
      "ok.test.ts": 'import { test } from "vitest"\ntest("passes", () => {})\n',
      "setup.test.ts":
        'import { beforeAll, test } from "vitest"\nbeforeAll(() => { throw new Error("PostgreSQL does not answer") })\ntest("never runs", () => {})\n',
      "import.test.ts": 'throw new Error("chromium is not installed")\n'
    })
    runVitest(pkg)
    const result = summarize({ root, steps: [], expectedSkips: [] })
    assert.equal(result.passed, 1)
    assert.ok(result.failed >= 2, result.line)
    assert.ok(
      result.failures.some((f) => f.includes("import.test.ts")),
      result.failures.join("\n")
    )
    assert.ok(
      result.failures.some((f) => f.includes("setup.test.ts")),
      result.failures.join("\n")
    )
    assert.doesNotMatch(result.line, / 0 failed/)
  })

  test("control (real vitest): an unlisted skip fails; the same skip listed with its reason does not", () => {
    const { root, pkg } = workspace({
      "skip.test.ts":
        'import { test } from "vitest"\ntest("runs", () => {})\ntest.skip("a new skip", () => {})\n'
    })
    runVitest(pkg)
    const unlisted = summarize({ root, steps: [], expectedSkips: [] })
    assert.equal(unlisted.failed, 1)
    assert.match(
      unlisted.failures[0],
      /a new skip: skipped, and scripts\/expected-skips.json does not list it/
    )
    assert.equal(unlisted.line, "1 passed, 1 failed, 1 skipped")
    const listed = summarize({
      root,
      steps: [],
      expectedSkips: [{ file: "packages/p/test/skip.test.ts", test: "a new skip", reason: "a control" }]
    })
    assert.equal(listed.line, "1 passed, 0 failed, 1 skipped", listed.failures.join("\n"))
  })

  test("a skip expected only without a variable fails once the variable is set", () => {
    const { root, pkg } = workspace({})
    report(pkg, {
      success: true,
      numPassedTests: 1,
      numPendingTests: 1,
      testResults: [
        fileResult(root, "vault.test.ts", "passed", [
          { fullName: "emulator works", status: "passed" },
          { fullName: "real Vault round-trips", status: "skipped" }
        ])
      ]
    })
    const entry = {
      file: "packages/p/test/vault.test.ts",
      testPrefix: "real Vault ",
      expectedOnlyWithout: ["VAULT_ADDR", "VAULT_TOKEN"],
      reason: "no Vault here"
    }
    assert.equal(summarize({ root, steps: [], expectedSkips: [entry], env: {} }).failed, 0)
    assert.equal(summarize({ root, steps: [], expectedSkips: [entry], env: { VAULT_ADDR: "x" } }).failed, 0)
    const set = summarize({
      root,
      steps: [],
      expectedSkips: [entry],
      env: { VAULT_ADDR: "http://127.0.0.1:8200", VAULT_TOKEN: "t" }
    })
    assert.equal(set.failed, 1)
  })

  test("a failed step (setup, lint, typecheck, chaos) is a named failure even when every test passed", () => {
    const { root, pkg } = workspace({})
    report(pkg, {
      success: true,
      numPassedTests: 3,
      testResults: [fileResult(root, "a.test.ts", "passed", [{ fullName: "a", status: "passed" }])]
    })
    const result = summarize({
      root,
      steps: [
        { name: "setup-services", code: 0, seconds: 1 },
        { name: "typecheck", code: 2, seconds: 30 }
      ],
      expectedSkips: []
    })
    assert.equal(result.line, "3 passed, 1 failed")
    assert.deepEqual(result.failures, ["step typecheck failed (exit 2)"])
  })

  test("success: false with nothing else failed counts, and so does a package with tests but no report", () => {
    const { root, pkg } = workspace({ "a.test.ts": "" })
    assert.match(summarize({ root, steps: [], expectedSkips: [] }).failures[0], /wrote no report/)
    report(pkg, { success: false, numPassedTests: 2 })
    const result = summarize({ root, steps: [], expectedSkips: [] })
    assert.equal(result.line, "2 passed, 1 failed")
    assert.match(result.failures[0], /success: false/)
  })

  test("a failed test is named with its file and counted once", () => {
    const { root, pkg } = workspace({})
    report(pkg, {
      success: false,
      numPassedTests: 1,
      testResults: [
        fileResult(root, "a.test.ts", "failed", [
          { fullName: "good", status: "passed" },
          { fullName: "bad", status: "failed" }
        ])
      ]
    })
    const result = summarize({ root, steps: [], expectedSkips: [] })
    assert.equal(result.line, "1 passed, 1 failed")
    assert.deepEqual(result.failures, ["packages/p/test/a.test.ts > bad: failed"])
  })

  test("a failed tests step counts once: by the failures its reports name, or by itself when they name none", () => {
    const { root, pkg } = workspace({})
    const tests = { name: "tests", code: 1, seconds: 9 }
    report(pkg, { success: true, numPassedTests: 1 })
    assert.deepEqual(summarize({ root, steps: [tests], expectedSkips: [] }).failures, [
      "step tests failed (exit 1)"
    ])
    report(pkg, {
      success: false,
      numPassedTests: 0,
      testResults: [fileResult(root, "a.test.ts", "failed", [{ fullName: "bad", status: "failed" }])]
    })
    const named = summarize({ root, steps: [tests], expectedSkips: [] })
    assert.equal(named.line, "0 passed, 1 failed")
  })
})
