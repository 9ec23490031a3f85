import type { Capability, PolicyRule } from "../../testing/VaultEmulator.js"
import { globMatches, vaultTime } from "./reply.js"

/** A token the emulator issued: its policy, TTLs and expiry. */
export interface Token {
  readonly id: string
  readonly accessor: string
  readonly policy: ReadonlyArray<PolicyRule> | "root"
  readonly policyNames: ReadonlyArray<string>
  readonly createdAt: number
  readonly ttl: number
  readonly maxTtl: number
  readonly renewable: boolean
  /** Epoch ms; null: never. */
  expiresAt: number | null
  readonly meta: Record<string, string> | null
}

export const allowed = (token: Token, path: string, capability: Capability): boolean => {
  if (token.policy === "root") return true
  // Vault's default policy
  if (path === "auth/token/lookup-self" || path === "auth/token/renew-self") return true
  // the most specific (longest) matching rule wins, as in Vault
  const rules = token.policy
    .filter((rule) => globMatches(rule.path, path))
    .sort((a, b) => b.path.length - a.path.length)
  const rule = rules[0]
  return rule?.capabilities.includes(capability) === true
}

export const tokenInfo = (token: Token, now: number) => ({
  accessor: token.accessor,
  creation_time: Math.floor(token.createdAt / 1000),
  creation_ttl: token.ttl,
  display_name: "token",
  entity_id: "",
  expire_time: token.expiresAt === null ? null : vaultTime(token.expiresAt),
  explicit_max_ttl: token.maxTtl,
  id: token.id,
  issue_time: vaultTime(token.createdAt),
  meta: token.meta,
  num_uses: 0,
  orphan: true,
  path: token.policy === "root" ? "auth/token/root" : "auth/token/create",
  policies: token.policyNames,
  renewable: token.renewable,
  ttl: token.expiresAt === null ? 0 : Math.max(0, Math.round((token.expiresAt - now) / 1000)),
  type: "service"
})

export const authBlock = (token: Token, now: number) => ({
  client_token: token.id,
  accessor: token.accessor,
  policies: token.policyNames,
  token_policies: token.policyNames,
  metadata: token.meta,
  lease_duration: token.expiresAt === null ? 0 : Math.max(0, Math.round((token.expiresAt - now) / 1000)),
  renewable: token.renewable,
  entity_id: "",
  token_type: "service",
  orphan: true
})
