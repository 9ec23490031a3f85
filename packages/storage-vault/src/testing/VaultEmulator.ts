import { createCipheriv, createDecipheriv, hkdfSync, randomBytes, randomUUID } from "node:crypto"
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse
} from "node:http"
import { createServer as createHttpsServer } from "node:https"
import type { AddressInfo, Socket } from "node:net"

/**
 * An in-memory stand-in for HashiCorp Vault's HTTP API, for tests: a real HTTP(S) server that answers
 * the documented requests the storage-vault adapter makes, with Vault's status codes and error bodies.
 *
 * - KV version 2 (`<mount>/data|metadata|delete|destroy|config/...`): versions, check-and-set
 *   (`options.cas`), `cas_required`, `max_versions`, soft delete, destroy of versions, metadata delete, listing by `GET ...?list=true` (a Node
 *   HTTP server cannot receive the `LIST` verb).
 * - Transit (`<mount>/keys|encrypt|decrypt|rewrap/...`): AES-256-GCM keys with versions, rotation,
 *   `min_decryption_version`, derived keys bound to a `context`.
 * - Tokens (`auth/token/lookup-self`, `renew-self`) with TTLs and max TTLs, AppRole login, policies as
 *   path rules (glob `*` suffix and `+` segment, Vault's capabilities), namespaces (`X-Vault-Namespace`:
 *   each namespace has its own mounts and data), `sys/health`, sealing and an optional latency.
 *
 * Not a security boundary and not a full Vault: only what the adapter and its tests use.
 */

export type Capability = "create" | "read" | "update" | "delete" | "list" | "sudo"

/** One rule of a Vault policy (`path "secret/data/app/*" { capabilities = ["read"] }`). */
export interface PolicyRule {
  readonly path: string
  readonly capabilities: ReadonlyArray<Capability>
}

export interface TokenOptions {
  /** Path rules the token may use; a token without rules can only look itself up and renew itself. */
  readonly policy?: ReadonlyArray<PolicyRule> | undefined
  /** Seconds the token lives (0: forever). Default 3600. */
  readonly ttl?: number | undefined
  /** Seconds after creation beyond which renewals cannot extend it (0: no limit). */
  readonly maxTtl?: number | undefined
  /** Default true. */
  readonly renewable?: boolean | undefined
}

export interface AppRoleOptions {
  readonly policy?: ReadonlyArray<PolicyRule> | undefined
  /** TTL of tokens issued by login, in seconds (default 3600). */
  readonly tokenTtl?: number | undefined
  readonly tokenMaxTtl?: number | undefined
}

export interface VaultEmulatorOptions {
  /** The root token (default: a random `hvs.` string). */
  readonly rootToken?: string | undefined
  /** KV v2 mounts of the root namespace (default `["secret"]`). */
  readonly kvMounts?: ReadonlyArray<string> | undefined
  /** Transit mounts of the root namespace (default `["transit"]`). */
  readonly transitMounts?: ReadonlyArray<string> | undefined
  /** Namespaces that exist besides the root one; each gets the same mounts, with its own data. */
  readonly namespaces?: ReadonlyArray<string> | undefined
  /** Delay before every answer, in milliseconds (default 0). */
  readonly latencyMs?: number | undefined
  /** Serve HTTPS with this key and certificate (PEM). */
  readonly tls?: { readonly key: string; readonly cert: string } | undefined
  readonly host?: string | undefined
  readonly port?: number | undefined
}

/**
 * A transport fault for requests whose API path (without `/v1/`) starts with `pathPrefix`, for the next
 * `count` of them (default: every one until `clearFaults`):
 * - `status`: answered with this HTTP status and a Vault error body (e.g. 500, 502, 503 from a proxy);
 * - `reset`: the connection is destroyed without an answer (ECONNRESET at the client);
 * - `hang`: never answered (the client's timeout fires); released by `clearFaults`, `stop` or `close`.
 * A refused connection is `stop()` (and `restart()`).
 */
export type TransportFault = { readonly pathPrefix: string; readonly count?: number | undefined } & (
  | { readonly kind: "status"; readonly status: number }
  | { readonly kind: "reset" | "hang" }
)

export interface RequestRecord {
  readonly method: string
  readonly path: string
  readonly namespace: string | undefined
  readonly status: number
}

export interface VaultEmulator {
  /** e.g. `http://127.0.0.1:43125`; what `VAULT_ADDR` would be. */
  readonly address: string
  readonly rootToken: string
  /** Every request answered, in order (no tokens or bodies). */
  readonly requests: ReadonlyArray<RequestRecord>
  readonly seal: () => void
  readonly unseal: () => void
  readonly setLatency: (ms: number) => void
  /** Adds a transport fault (see `TransportFault`). */
  readonly injectFault: (fault: TransportFault) => void
  /** Removes every fault and releases hung requests (their connections are closed). */
  readonly clearFaults: () => void
  readonly createToken: (options?: TokenOptions) => string
  readonly revokeToken: (token: string) => void
  /** Creates an AppRole role; answers its `role_id` and a `secret_id`. */
  readonly createAppRole: (name: string, options?: AppRoleOptions) => { roleId: string; secretId: string }
  /** Creates a Transit key (`derived` for keys used with a `context`). */
  readonly createTransitKey: (name: string, options?: { derived?: boolean; mount?: string }) => void
  /** Every secret's data in every KV mount, as JSON text (for checks that nothing is stored in plain text). */
  readonly dump: () => string
  /** Stops accepting connections (drops open ones); the data stays. */
  readonly stop: () => Promise<void>
  /** Listens again on the same port after `stop`. */
  readonly restart: () => Promise<void>
  readonly close: () => Promise<void>
}

interface KvVersion {
  data: Record<string, unknown>
  readonly createdTime: string
  deletionTime: string
  destroyed: boolean
}

interface KvSecret {
  readonly versions: Map<number, KvVersion>
  currentVersion: number
  oldestVersion: number
  readonly createdTime: string
  updatedTime: string
}

interface KvMount {
  readonly kind: "kv"
  readonly secrets: Map<string, KvSecret>
  config: { maxVersions: number; casRequired: boolean }
}

interface TransitKey {
  readonly derived: boolean
  readonly versions: Map<number, { key: Buffer; created: number }>
  latestVersion: number
  minDecryptionVersion: number
}

interface TransitMount {
  readonly kind: "transit"
  readonly keys: Map<string, TransitKey>
}

type Mount = KvMount | TransitMount

interface Token {
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

class Reply {
  constructor(
    readonly status: number,
    readonly body: unknown
  ) {}
}

const errors = (status: number, ...messages: Array<string>) => new Reply(status, { errors: messages })
const noContent = () => new Reply(204, undefined)

/** RFC 3339 with a nanosecond fraction, as Vault writes times. */
const vaultTime = (ms: number): string => {
  const iso = new Date(ms).toISOString()
  return `${iso.slice(0, 19)}.${iso.slice(20, 23)}000000Z`
}

const globMatches = (pattern: string, path: string): boolean => {
  const prefix = pattern.endsWith("*")
  const body = prefix ? pattern.slice(0, -1) : pattern
  const patternParts = body.split("/")
  const pathParts = path.split("/")
  if (!prefix && patternParts.length !== pathParts.length) return false
  if (prefix && pathParts.length < patternParts.length) return false
  return patternParts.every((part, i) => {
    const actual = pathParts[i] ?? ""
    if (part === "+") return prefix && i === patternParts.length - 1 ? true : actual !== ""
    if (prefix && i === patternParts.length - 1) return actual.startsWith(part)
    return actual === part
  })
}

const envelope = (data: unknown, extra: Record<string, unknown> = {}) => ({
  request_id: randomUUID(),
  lease_id: "",
  renewable: false,
  lease_duration: 0,
  data,
  wrap_info: null,
  warnings: null,
  auth: null,
  ...extra
})

const readBody = (req: IncomingMessage): Promise<string> =>
  new Promise((resolve, reject) => {
    const chunks: Array<Buffer> = []
    req.on("data", (chunk: Buffer) => chunks.push(chunk))
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")))
    req.on("error", reject)
  })

const b64 = (text: unknown): Buffer | undefined => {
  if (typeof text !== "string") return undefined
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) return undefined
  return Buffer.from(text, "base64")
}

/** Starts an emulator on a free port of 127.0.0.1 (or the given host/port). */
export const startVaultEmulator = async (options: VaultEmulatorOptions = {}): Promise<VaultEmulator> => {
  const rootToken = options.rootToken ?? `hvs.root${randomBytes(12).toString("base64url")}`
  let sealed = false
  let latency = options.latencyMs ?? 0
  const requests: Array<RequestRecord> = []
  const faults: Array<{ fault: TransportFault; left: number }> = []
  const hung = new Set<ServerResponse>()
  /** The fault that applies to this request, counted; undefined when none does. */
  const faultFor = (path: string): TransportFault | undefined => {
    const index = faults.findIndex((f) => path.startsWith(f.fault.pathPrefix))
    const found = faults[index]
    if (found === undefined) return undefined
    found.left -= 1
    if (found.left <= 0) faults.splice(index, 1)
    return found.fault
  }
  const tokens = new Map<string, Token>()
  const roles = new Map<
    string,
    { roleId: string; secretIds: Set<string>; options: AppRoleOptions; name: string }
  >()
  const namespaces = new Map<string, Map<string, Mount>>()

  const makeMounts = (): Map<string, Mount> => {
    const mounts = new Map<string, Mount>()
    for (const name of options.kvMounts ?? ["secret"]) {
      mounts.set(name, { kind: "kv", secrets: new Map(), config: { maxVersions: 10, casRequired: false } })
    }
    for (const name of options.transitMounts ?? ["transit"]) {
      mounts.set(name, { kind: "transit", keys: new Map() })
    }
    return mounts
  }
  namespaces.set("", makeMounts())
  for (const ns of options.namespaces ?? []) namespaces.set(ns.replace(/^\/+|\/+$/g, ""), makeMounts())

  tokens.set(rootToken, {
    id: rootToken,
    accessor: randomUUID(),
    policy: "root",
    policyNames: ["root"],
    createdAt: Date.now(),
    ttl: 0,
    maxTtl: 0,
    renewable: false,
    expiresAt: null,
    meta: null
  })

  const issueToken = (
    policy: ReadonlyArray<PolicyRule>,
    ttl: number,
    maxTtl: number,
    renewable: boolean,
    meta: Record<string, string> | null
  ): Token => {
    const now = Date.now()
    const token: Token = {
      id: `hvs.${randomBytes(18).toString("base64url")}`,
      accessor: randomUUID(),
      policy,
      policyNames: ["default", ...(policy.length > 0 ? ["emulated"] : [])],
      createdAt: now,
      ttl,
      maxTtl,
      renewable,
      expiresAt: ttl > 0 ? now + ttl * 1000 : null,
      meta
    }
    tokens.set(token.id, token)
    return token
  }

  const allowed = (token: Token, path: string, capability: Capability): boolean => {
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

  const tokenInfo = (token: Token, now: number) => ({
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

  const authBlock = (token: Token, now: number) => ({
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

  const keyInfo = (name: string, key: TransitKey) => ({
    name,
    type: "aes256-gcm96",
    derived: key.derived,
    ...(key.derived ? { kdf: "hkdf_sha256" } : {}),
    keys: Object.fromEntries([...key.versions].map(([v, k]) => [String(v), Math.floor(k.created / 1000)])),
    latest_version: key.latestVersion,
    min_available_version: 0,
    min_decryption_version: key.minDecryptionVersion,
    min_encryption_version: 0,
    deletion_allowed: false,
    exportable: false,
    allow_plaintext_backup: false,
    supports_encryption: true,
    supports_decryption: true,
    supports_derivation: true,
    supports_signing: false
  })

  const newTransitKey = (derived: boolean): TransitKey => ({
    derived,
    versions: new Map([[1, { key: randomBytes(32), created: Date.now() }]]),
    latestVersion: 1,
    minDecryptionVersion: 1
  })

  const keyFor = (key: TransitKey, version: number, context: Buffer | undefined): Buffer | Reply => {
    const material = key.versions.get(version)?.key
    if (material === undefined) return errors(400, "invalid ciphertext: invalid key version")
    if (!key.derived) return material
    if (context === undefined || context.length === 0) {
      return errors(
        400,
        "missing 'context' for key derivation; the key was created using a derived key, which means additional, per-request information must be included in order to perform operations with the key"
      )
    }
    return Buffer.from(hkdfSync("sha256", material, Buffer.alloc(0), context, 32))
  }

  const encryptWith = (key: TransitKey, plaintext: Buffer, context: Buffer | undefined): Reply => {
    const material = keyFor(key, key.latestVersion, context)
    if (material instanceof Reply) return material
    const nonce = randomBytes(12)
    const cipher = createCipheriv("aes-256-gcm", material, nonce)
    const body = Buffer.concat([nonce, cipher.update(plaintext), cipher.final(), cipher.getAuthTag()])
    return new Reply(
      200,
      envelope({
        ciphertext: `vault:v${key.latestVersion}:${body.toString("base64")}`,
        key_version: key.latestVersion
      })
    )
  }

  const decryptWith = (key: TransitKey, ciphertext: unknown, context: Buffer | undefined): Buffer | Reply => {
    if (typeof ciphertext !== "string" || !ciphertext.startsWith("vault:")) {
      return errors(400, "invalid ciphertext: no prefix")
    }
    const match = /^vault:v(\d+):(.*)$/.exec(ciphertext)
    const body = b64(match?.[2])
    if (match === null || body === undefined) return errors(400, "invalid ciphertext: wrong format")
    const version = Number(match[1])
    if (version < key.minDecryptionVersion) {
      return errors(400, "ciphertext or signature version is disallowed by policy (too old)")
    }
    if (version > key.latestVersion) return errors(400, "invalid ciphertext: invalid key version")
    const material = keyFor(key, version, context)
    if (material instanceof Reply) return material
    if (body.length < 28) return errors(400, "invalid ciphertext: unable to decrypt")
    try {
      const decipher = createDecipheriv("aes-256-gcm", material, body.subarray(0, 12))
      decipher.setAuthTag(body.subarray(body.length - 16))
      return Buffer.concat([decipher.update(body.subarray(12, body.length - 16)), decipher.final()])
    } catch {
      return errors(400, "cipher: message authentication failed")
    }
  }

  const listKeys = (secrets: Map<string, KvSecret>, folder: string): Array<string> => {
    const base = folder === "" || folder.endsWith("/") ? folder : `${folder}/`
    const keys = new Set<string>()
    for (const path of secrets.keys()) {
      if (!path.startsWith(base)) continue
      const rest = path.slice(base.length)
      const slash = rest.indexOf("/")
      keys.add(slash === -1 ? rest : rest.slice(0, slash + 1))
    }
    return [...keys].filter((k) => k !== "").sort()
  }

  const metadataOf = (secret: KvSecret, config: KvMount["config"]) => ({
    cas_required: config.casRequired,
    created_time: secret.createdTime,
    current_version: secret.currentVersion,
    custom_metadata: null,
    delete_version_after: "0s",
    max_versions: 0,
    oldest_version: secret.oldestVersion,
    updated_time: secret.updatedTime,
    versions: Object.fromEntries(
      [...secret.versions].map(([n, v]) => [
        String(n),
        { created_time: v.createdTime, deletion_time: v.deletionTime, destroyed: v.destroyed }
      ])
    )
  })

  const versionMetadata = (n: number, v: KvVersion) => ({
    created_time: v.createdTime,
    custom_metadata: null,
    deletion_time: v.deletionTime,
    destroyed: v.destroyed,
    version: n
  })

  const handleKv = (
    mount: KvMount,
    mountName: string,
    rest: string,
    method: string,
    list: boolean,
    body: Record<string, unknown>,
    check: (capability: Capability) => Reply | undefined
  ): Reply => {
    const slash = rest.indexOf("/")
    const area = slash === -1 ? rest : rest.slice(0, slash)
    const path = slash === -1 ? "" : rest.slice(slash + 1)
    const now = Date.now()
    if (area === "config") {
      if (method === "GET") {
        return (
          check("read") ??
          new Reply(
            200,
            envelope({
              cas_required: mount.config.casRequired,
              delete_version_after: "0s",
              max_versions: mount.config.maxVersions
            })
          )
        )
      }
      const denied = check("update")
      if (denied !== undefined) return denied
      if (typeof body.max_versions === "number") mount.config.maxVersions = body.max_versions
      if (typeof body.cas_required === "boolean") mount.config.casRequired = body.cas_required
      return noContent()
    }
    if (area === "data") {
      const secret = mount.secrets.get(path)
      if (method === "GET") {
        const denied = check("read")
        if (denied !== undefined) return denied
        const latest = secret?.versions.get(secret.currentVersion)
        if (secret === undefined || latest === undefined) return errors(404)
        if (latest.deletionTime !== "" || latest.destroyed) {
          return new Reply(
            404,
            envelope({ data: null, metadata: versionMetadata(secret.currentVersion, latest) })
          )
        }
        return new Reply(
          200,
          envelope({ data: latest.data, metadata: versionMetadata(secret.currentVersion, latest) })
        )
      }
      if (method === "POST" || method === "PUT") {
        const denied = check(secret === undefined ? "create" : "update")
        if (denied !== undefined) return denied
        const data = body.data
        if (typeof data !== "object" || data === null || Array.isArray(data))
          return errors(400, "no data provided")
        const cas = (body.options as { cas?: unknown } | undefined)?.cas
        if (cas === undefined && mount.config.casRequired) {
          return errors(400, "check-and-set parameter required for this call")
        }
        const current = secret?.currentVersion ?? 0
        if (cas !== undefined && Number(cas) !== current) {
          return errors(400, "check-and-set parameter did not match the current version")
        }
        const time = vaultTime(now)
        const target: KvSecret = secret ?? {
          versions: new Map(),
          currentVersion: 0,
          oldestVersion: 0,
          createdTime: time,
          updatedTime: time
        }
        const version = target.currentVersion + 1
        const written: KvVersion = {
          data: structuredClone(data as Record<string, unknown>),
          createdTime: time,
          deletionTime: "",
          destroyed: false
        }
        target.versions.set(version, written)
        target.currentVersion = version
        target.updatedTime = time
        if (target.oldestVersion === 0) target.oldestVersion = version
        while (target.versions.size > mount.config.maxVersions) {
          target.versions.delete(target.oldestVersion)
          target.oldestVersion++
        }
        mount.secrets.set(path, target)
        return new Reply(200, envelope(versionMetadata(version, written), { mount_type: "kv" }))
      }
      if (method === "DELETE") {
        const denied = check("delete")
        if (denied !== undefined) return denied
        const latest = secret?.versions.get(secret.currentVersion)
        if (latest !== undefined && latest.deletionTime === "") latest.deletionTime = vaultTime(now)
        return noContent()
      }
    }
    if (area === "delete" && (method === "POST" || method === "PUT")) {
      const denied = check("update")
      if (denied !== undefined) return denied
      const secret = mount.secrets.get(path)
      const versions = Array.isArray(body.versions) ? body.versions : []
      if (versions.length === 0) return errors(400, "no version number provided")
      for (const n of versions) {
        const v = secret?.versions.get(Number(n))
        if (v !== undefined && v.deletionTime === "") v.deletionTime = vaultTime(now)
      }
      return noContent()
    }
    if (area === "destroy" && (method === "POST" || method === "PUT")) {
      const denied = check("update")
      if (denied !== undefined) return denied
      const secret = mount.secrets.get(path)
      const versions = Array.isArray(body.versions) ? body.versions : []
      if (versions.length === 0) return errors(400, "no version number provided")
      for (const n of versions) {
        const v = secret?.versions.get(Number(n))
        if (v !== undefined) {
          v.destroyed = true
          v.data = {}
        }
      }
      return noContent()
    }
    if (area === "metadata") {
      if (method === "GET" && list) {
        const denied = check("list")
        if (denied !== undefined) return denied
        const keys = listKeys(mount.secrets, path)
        return keys.length === 0 ? errors(404) : new Reply(200, envelope({ keys }))
      }
      if (method === "GET") {
        const denied = check("read")
        if (denied !== undefined) return denied
        const secret = mount.secrets.get(path)
        return secret === undefined ? errors(404) : new Reply(200, envelope(metadataOf(secret, mount.config)))
      }
      if (method === "DELETE") {
        const denied = check("delete")
        if (denied !== undefined) return denied
        mount.secrets.delete(path)
        return noContent()
      }
    }
    return ["config", "data", "delete", "destroy", "metadata"].includes(area)
      ? errors(405, "unsupported operation")
      : errors(404, `no handler for route "${mountName}/${rest}". route entry not found.`)
  }

  const handleTransit = (
    mount: TransitMount,
    rest: string,
    method: string,
    body: Record<string, unknown>,
    check: (capability: Capability) => Reply | undefined
  ): Reply => {
    const parts = rest.split("/")
    const [area, name = "", action] = parts
    const context = body.context === undefined ? undefined : b64(body.context)
    if (body.context !== undefined && context === undefined)
      return errors(400, "failed to base64-decode context")
    if (area === "keys") {
      const key = mount.keys.get(name)
      if (action === undefined && method === "GET") {
        const denied = check("read")
        if (denied !== undefined) return denied
        return key === undefined ? errors(404) : new Reply(200, envelope(keyInfo(name, key)))
      }
      if (action === undefined && method === "POST") {
        const denied = check("update")
        if (denied !== undefined) return denied
        const created = key ?? newTransitKey(body.derived === true)
        mount.keys.set(name, created)
        return new Reply(200, envelope(keyInfo(name, created)))
      }
      if (action === "rotate" && method === "POST") {
        const denied = check("update")
        if (denied !== undefined) return denied
        if (key === undefined) return errors(400, "key not found")
        key.latestVersion++
        key.versions.set(key.latestVersion, { key: randomBytes(32), created: Date.now() })
        return new Reply(200, envelope(keyInfo(name, key)))
      }
      if (action === "config" && method === "POST") {
        const denied = check("update")
        if (denied !== undefined) return denied
        if (key === undefined) return errors(400, `no existing key named ${name} could be found`)
        if (typeof body.min_decryption_version === "number") {
          if (body.min_decryption_version > key.latestVersion) {
            return errors(400, "cannot set min decryption version to a value greater than the latest version")
          }
          key.minDecryptionVersion = Math.max(1, body.min_decryption_version)
        }
        return new Reply(200, envelope(keyInfo(name, key)))
      }
    }
    if (method !== "POST" && method !== "PUT") return errors(405, "unsupported operation")
    if (area === "encrypt") {
      let key = mount.keys.get(name)
      const denied = check(key === undefined ? "create" : "update")
      if (denied !== undefined) return denied
      const plaintext = b64(body.plaintext)
      if (plaintext === undefined) return errors(400, "failed to base64-decode plaintext")
      if (key === undefined) {
        // upsert, as Vault does for a token allowed to create
        key = newTransitKey(context !== undefined)
        mount.keys.set(name, key)
      }
      return encryptWith(key, plaintext, context)
    }
    if (area === "decrypt" || area === "rewrap") {
      const denied = check("update")
      if (denied !== undefined) return denied
      const key = mount.keys.get(name)
      if (key === undefined) return errors(400, "encryption key not found")
      const plaintext = decryptWith(key, body.ciphertext, context)
      if (plaintext instanceof Reply) return plaintext
      if (area === "decrypt") return new Reply(200, envelope({ plaintext: plaintext.toString("base64") }))
      return encryptWith(key, plaintext, context)
    }
    return errors(405, "unsupported operation")
  }

  const handle = (
    method: string,
    path: string,
    list: boolean,
    namespace: string | undefined,
    tokenId: string | undefined,
    body: Record<string, unknown>
  ): Reply => {
    const now = Date.now()
    if (path === "sys/health") {
      const info = {
        initialized: true,
        sealed,
        standby: false,
        performance_standby: false,
        replication_performance_mode: "disabled",
        replication_dr_mode: "disabled",
        server_time_utc: Math.floor(now / 1000),
        version: "1.17.0+emulator",
        cluster_name: "vault-emulator",
        cluster_id: "00000000-0000-0000-0000-000000000000"
      }
      return new Reply(sealed ? 503 : 200, info)
    }
    if (path === "sys/seal-status") {
      return new Reply(200, {
        type: "shamir",
        initialized: true,
        sealed,
        t: 1,
        n: 1,
        progress: 0,
        version: "1.17.0+emulator"
      })
    }
    if (sealed) return errors(503, "Vault is sealed")
    const mounts = namespaces.get((namespace ?? "").replace(/^\/+|\/+$/g, ""))
    if (mounts === undefined) return errors(404, `no handler for route "${path}". route entry not found.`)

    const loginMatch = /^auth\/([^/]+)\/login$/.exec(path)
    if (loginMatch !== null && method === "POST") {
      const role = [...roles.values()].find((r) => r.roleId === body.role_id)
      if (role === undefined || typeof body.secret_id !== "string" || !role.secretIds.has(body.secret_id)) {
        return errors(400, "invalid role or secret ID")
      }
      const token = issueToken(
        role.options.policy ?? [],
        role.options.tokenTtl ?? 3600,
        role.options.tokenMaxTtl ?? 0,
        true,
        { role_name: role.name }
      )
      return new Reply(200, envelope(null, { auth: authBlock(token, now) }))
    }

    const token = tokenId === undefined ? undefined : tokens.get(tokenId)
    if (token === undefined) {
      return tokenId === undefined || tokenId === ""
        ? errors(403, "permission denied")
        : errors(403, "permission denied", "invalid token")
    }
    if (token.expiresAt !== null && token.expiresAt <= now) {
      tokens.delete(token.id)
      return errors(403, "permission denied", "invalid token")
    }
    const check = (capability: Capability): Reply | undefined =>
      allowed(token, path, capability) ? undefined : errors(403, "permission denied")

    if (path === "auth/token/lookup-self" && method === "GET") {
      return new Reply(200, envelope(tokenInfo(token, now)))
    }
    if (path === "auth/token/renew-self" && (method === "POST" || method === "PUT")) {
      if (!token.renewable || token.expiresAt === null) return errors(400, "lease is not renewable")
      const increment = typeof body.increment === "number" ? body.increment : token.ttl
      let expiresAt = now + increment * 1000
      if (token.maxTtl > 0) expiresAt = Math.min(expiresAt, token.createdAt + token.maxTtl * 1000)
      token.expiresAt = expiresAt
      return new Reply(200, envelope(null, { auth: authBlock(token, now) }))
    }

    const [mountName = "", ...restParts] = path.split("/")
    const mount = mounts.get(mountName)
    // Vault checks the policy before routing: only a token allowed at the path learns that nothing is mounted
    if (mount === undefined) {
      const denied = check(
        method === "GET" ? (list ? "list" : "read") : method === "DELETE" ? "delete" : "update"
      )
      return denied ?? errors(404, `no handler for route "${path}". route entry not found.`)
    }
    const rest = restParts.join("/")
    return mount.kind === "kv"
      ? handleKv(mount, mountName, rest, method, list, body, check)
      : handleTransit(mount, rest, method, body, check)
  }

  const sockets = new Set<Socket>()
  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    void (async () => {
      const url = new URL(req.url ?? "/", "http://emulator")
      const method = (req.method ?? "GET").toUpperCase()
      const namespaceHeader = req.headers["x-vault-namespace"]
      const namespace = typeof namespaceHeader === "string" ? namespaceHeader : undefined
      const tokenHeader = req.headers["x-vault-token"]
      const text = await readBody(req)
      if (latency > 0) await new Promise((resolve) => setTimeout(resolve, latency))
      let reply: Reply
      const path = url.pathname.startsWith("/v1/") ? decodeURIComponent(url.pathname.slice(4)) : undefined
      const fault = path === undefined ? undefined : faultFor(path)
      if (fault !== undefined && fault.kind !== "status") {
        requests.push({ method, path: path ?? url.pathname, namespace, status: 0 })
        if (fault.kind === "reset") req.socket.destroy()
        else hung.add(res)
        return
      }
      let body: Record<string, unknown> = {}
      try {
        const parsed: unknown = text === "" ? {} : JSON.parse(text)
        body = typeof parsed === "object" && parsed !== null ? (parsed as Record<string, unknown>) : {}
      } catch {
        body = {}
      }
      if (path === undefined) reply = errors(404)
      else if (fault !== undefined && fault.kind === "status") {
        reply = errors(fault.status, `emulated fault: HTTP ${fault.status}`)
      } else if (text !== "" && Object.keys(body).length === 0 && text.trim() !== "{}") {
        reply = errors(400, "failed to parse JSON input")
      } else {
        const isList = url.searchParams.get("list") === "true" || method === "LIST"
        reply = handle(
          method === "LIST" ? "GET" : method,
          isList ? path.replace(/\/+$/, "") : path,
          isList,
          namespace,
          typeof tokenHeader === "string" ? tokenHeader : undefined,
          body
        )
      }
      requests.push({ method, path: path ?? url.pathname, namespace, status: reply.status })
      const payload = reply.body === undefined ? "" : JSON.stringify(reply.body)
      res.writeHead(reply.status, {
        "Cache-Control": "no-store",
        ...(payload === "" ? {} : { "Content-Type": "application/json" })
      })
      res.end(payload)
    })()
  }

  const makeServer = (): Server => {
    const server: Server =
      options.tls === undefined
        ? createHttpServer(onRequest)
        : createHttpsServer({ key: options.tls.key, cert: options.tls.cert }, onRequest)
    server.on("connection", (socket: Socket) => {
      sockets.add(socket)
      socket.on("close", () => sockets.delete(socket))
    })
    return server
  }
  const listen = (server: Server, port: number): Promise<number> =>
    new Promise((resolve, reject) => {
      server.once("error", reject)
      server.listen(port, options.host ?? "127.0.0.1", () => resolve((server.address() as AddressInfo).port))
    })
  const shut = (server: Server): Promise<void> =>
    new Promise((resolve) => {
      for (const res of hung) res.destroy()
      hung.clear()
      for (const socket of sockets) socket.destroy()
      server.close(() => resolve())
    })

  let server = makeServer()
  const port = await listen(server, options.port ?? 0)
  let running = true
  const address = `${options.tls === undefined ? "http" : "https"}://${options.host ?? "127.0.0.1"}:${port}`

  return {
    address,
    rootToken,
    requests,
    seal: () => {
      sealed = true
    },
    unseal: () => {
      sealed = false
    },
    setLatency: (ms) => {
      latency = ms
    },
    injectFault: (fault) => {
      faults.push({ fault, left: fault.count ?? Number.POSITIVE_INFINITY })
    },
    clearFaults: () => {
      faults.length = 0
      for (const res of hung) res.destroy()
      hung.clear()
    },
    createToken: (tokenOptions = {}) =>
      issueToken(
        tokenOptions.policy ?? [],
        tokenOptions.ttl ?? 3600,
        tokenOptions.maxTtl ?? 0,
        tokenOptions.renewable ?? true,
        null
      ).id,
    revokeToken: (token) => {
      tokens.delete(token)
    },
    createAppRole: (name, roleOptions = {}) => {
      const roleId = randomUUID()
      const secretId = randomUUID()
      roles.set(name, { name, roleId, secretIds: new Set([secretId]), options: roleOptions })
      return { roleId, secretId }
    },
    createTransitKey: (name, keyOptions = {}) => {
      for (const mounts of namespaces.values()) {
        const mount = mounts.get(keyOptions.mount ?? "transit")
        if (mount?.kind === "transit" && !mount.keys.has(name)) {
          mount.keys.set(name, newTransitKey(keyOptions.derived ?? false))
        }
      }
    },
    dump: () => {
      const out: Array<unknown> = []
      for (const mounts of namespaces.values()) {
        for (const mount of mounts.values()) {
          if (mount.kind !== "kv") continue
          for (const [path, secret] of mount.secrets) {
            out.push([path, [...secret.versions.values()].map((v) => v.data)])
          }
        }
      }
      return JSON.stringify(out)
    },
    stop: async () => {
      if (!running) return
      running = false
      await shut(server)
    },
    restart: async () => {
      if (running) return
      server = makeServer()
      await listen(server, port)
      running = true
    },
    close: async () => {
      if (!running) return
      running = false
      await shut(server)
    }
  }
}
