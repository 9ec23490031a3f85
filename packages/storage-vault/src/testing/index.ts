/** Test helpers of `@token-broker/storage-vault`: an in-memory Vault emulator speaking Vault's HTTP API. */
export {
  type AppRoleOptions,
  type Capability,
  type PolicyRule,
  type RequestRecord,
  startVaultEmulator,
  type TokenOptions,
  type TransportFault,
  type VaultEmulator,
  type VaultEmulatorOptions
} from "./VaultEmulator.js"
