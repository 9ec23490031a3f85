import { randomBytes, randomUUID } from "node:crypto"
import type { IncomingMessage, ServerResponse } from "node:http"
import { handleKv, type KvMount } from "../internal/emulator/kv.js"
import { envelope, errors, Reply, readBody, sealStatus, sysHealth } from "../internal/emulator/reply.js"
import { makeListener } from "../internal/emulator/server.js"
import { allowed, authBlock, type Token, tokenInfo } from "../internal/emulator/tokens.js"
import { handleTransit, newTransitKey, type TransitMount } from "../internal/emulator/transit.js"

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

type Mount = KvMount | TransitMount

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

  const handle = (
    method: string,
    path: string,
    list: boolean,
    namespace: string | undefined,
    tokenId: string | undefined,
    body: Record<string, unknown>
  ): Reply => {
    const now = Date.now()
    if (path === "sys/health") return sysHealth(sealed, now)
    if (path === "sys/seal-status") return sealStatus(sealed)
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
    const request = { mountName, rest: restParts.join("/"), method, list, body, check }
    return mount.kind === "kv" ? handleKv(mount, request) : handleTransit(mount, request)
  }

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

  const listener = makeListener(onRequest, options, hung)
  const port = await listener.listen(options.port ?? 0)
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
      await listener.shut()
    },
    restart: async () => {
      if (running) return
      await listener.listen(port)
      running = true
    },
    close: async () => {
      if (!running) return
      running = false
      await listener.shut()
    }
  }
}
