import { definePackageConfig } from "@token-broker/vitest-config"

export default definePackageConfig()
