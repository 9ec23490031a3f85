import { definePackageConfig } from "@token-broker/vitest-config"

export default definePackageConfig({
  test: {
    // the 10,000-grant rotations and dev-idp consent runs spawn the built CLI many times
    testTimeout: 120_000
  }
})
