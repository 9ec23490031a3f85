// @ts-check
import { defineConfig, mergeConfig } from "vitest/config"

/**
 * The shared test configuration: every package writes a JSON report to
 * `test-results/vitest.json`, which `.ci/run` adds up into the closing line.
 * (Plain JavaScript: vitest loads config dependencies from node_modules without compiling them.)
 *
 * @param {import("vitest/config").ViteUserConfig} [overrides]
 */
export const definePackageConfig = (overrides = {}) =>
  mergeConfig(
    defineConfig({
      test: {
        include: ["test/**/*.test.ts"],
        reporters: ["default", ["json", { outputFile: "test-results/vitest.json" }]],
        // Safety nets, not measurements: wide enough for a test that spawns processes (each child compiles
        // its TypeScript through tsx) on a 2-core machine running two copies of the suite. A test never
        // asserts how fast something was.
        testTimeout: 120_000,
        hookTimeout: 180_000,
        pool: "forks"
      }
    }),
    overrides
  )
