/** @token-broker/storage-vault: grants in Vault's KV v2 engine and keys in its Transit engine, over Vault's HTTP API. */
export * as TransitKeyRing from "./TransitKeyRing.js"
export type { VaultAuth, VaultConnectionOptions } from "./VaultConnection.js"
export { VaultError, type VaultErrorReason } from "./VaultError.js"
export * as VaultGrantStore from "./VaultGrantStore.js"
