import { defineConfig, mergeConfig, type ViteUserConfig } from "vitest/config"

/**
 * The shared test configuration: every package writes a JSON report to
 * `test-results/vitest.json`, which `.ci/run` adds up into the closing line.
 */
export const definePackageConfig = (overrides: ViteUserConfig = {}) =>
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
