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
        testTimeout: 30_000,
        hookTimeout: 60_000,
        pool: "forks"
      }
    }),
    overrides
  )
