import type { PolicyRule } from "../src/testing/index.js"

/** The least-privilege policy of the README, as emulator rules (kept in step with README.md). */
export const storePolicy = (mount = "secret", prefix = "token-broker"): ReadonlyArray<PolicyRule> => [
  { path: `${mount}/data/${prefix}/*`, capabilities: ["create", "read", "update"] },
  { path: `${mount}/metadata/${prefix}/*`, capabilities: ["list", "read", "delete"] },
  { path: `${mount}/destroy/${prefix}/*`, capabilities: ["update"] }
]

export const transitPolicy = (mount = "transit", key = "token-broker"): ReadonlyArray<PolicyRule> => [
  { path: `${mount}/keys/${key}`, capabilities: ["read"] },
  { path: `${mount}/encrypt/${key}`, capabilities: ["update"] },
  { path: `${mount}/decrypt/${key}`, capabilities: ["update"] },
  { path: `${mount}/rewrap/${key}`, capabilities: ["update"] }
]
