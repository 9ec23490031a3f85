import { definePackageConfig } from "@token-broker/vitest-config"

// one long file: building, packing and installing take minutes on a 2-core machine, not a test's budget
export default definePackageConfig({ test: { testTimeout: 600_000, hookTimeout: 900_000 } })
