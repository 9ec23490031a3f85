export * as TransitKeyRing from "./TransitKeyRing.js"
export type { VaultAuth, VaultConnectionOptions } from "./VaultConnection.js"
export { VaultError, type VaultErrorReason } from "./VaultError.js"
export * as VaultGrantStore from "./VaultGrantStore.js"
