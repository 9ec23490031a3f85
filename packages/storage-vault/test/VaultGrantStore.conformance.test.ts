import { randomUUID } from "node:crypto"
import { readFileSync } from "node:fs"
import { grantStoreConformance } from "@token-broker/core/testing"
import { Effect } from "effect"
import { afterAll, describe } from "vitest"
import { VaultGrantStore } from "../src/index.js"
import { startVaultEmulator } from "../src/testing/index.js"
import { storePolicy } from "./support.js"

// The emulator serves real HTTP; the store uses a token holding only the README's least-privilege policy.
const emulator = await startVaultEmulator()
afterAll(() => emulator.close())

const options = {
  address: emulator.address,
  auth: { token: emulator.createToken({ policy: storePolicy("secret", "token-broker") }) },
  mount: "secret",
  prefix: "token-broker"
}

grantStoreConformance("vault (emulator, over HTTP)", () => VaultGrantStore.layer(options), {
  // what this store must have, named here and never read from the store: a store that stops declaring
  // one fails the suite's capability test instead of silently skipping the tests that need it
  capabilities: { crossProcessLeases: true, durable: true },
  child: { module: "@token-broker/storage-vault", export: "VaultGrantStore.layer", options },
  rawDump: () => Effect.sync(() => emulator.dump())
})

// Against a real Vault or OpenBao: VAULT_ADDR=http://127.0.0.1:8200 VAULT_TOKEN=... pnpm --filter
// @token-broker/storage-vault test (see README). Without both variables this block does not run.
const realAddress = process.env.VAULT_ADDR
const realToken = process.env.VAULT_TOKEN
const real = {
  address: realAddress ?? "",
  auth: { token: realToken ?? "" },
  ...(process.env.VAULT_NAMESPACE === undefined ? {} : { namespace: process.env.VAULT_NAMESPACE }),
  ...(process.env.VAULT_CACERT === undefined
    ? {}
    : { caCert: readFileSync(process.env.VAULT_CACERT, "utf8") }),
  mount: process.env.VAULT_KV_MOUNT ?? "secret",
  prefix: `token-broker-test/${randomUUID()}`
}
describe.runIf(realAddress !== undefined && realToken !== undefined)(
  "real Vault at VAULT_ADDR (runs only when VAULT_ADDR and VAULT_TOKEN are set)",
  () => {
    grantStoreConformance("vault (real server)", () => VaultGrantStore.layer(real), {
      capabilities: { crossProcessLeases: true, durable: true },
      child: { module: "@token-broker/storage-vault", export: "VaultGrantStore.layer", options: real }
    })
  }
)
