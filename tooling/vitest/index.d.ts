import type { ViteUserConfig } from "vitest/config"

/** The shared test configuration; see index.js. */
export declare const definePackageConfig: (overrides?: ViteUserConfig) => ViteUserConfig
