import { AsyncLocalStorage } from "node:async_hooks"
import type { Adapter, AdapterPayload } from "oidc-provider"

interface Entry {
  payload: AdapterPayload
  /** Epoch ms after which the entry is gone. */
  expiresAt: number
  /** Epoch ms of the first `consume` (the rotation time of a refresh token). */
  consumedAt?: number
}

const GRANTABLE = new Set([
  "AccessToken",
  "AuthorizationCode",
  "RefreshToken",
  "DeviceCode",
  "BackchannelAuthenticationRequest",
  "PreAuthorizedCode"
])

/** The endpoint a request to dev-idp reached, as the store sees it while serving that request. */
export type Endpoint = "token" | "revocation" | "introspection" | "other"

/** What a revocation request presenting a rotated-away (consumed) refresh token does. */
export type ConsumedRevocation = "revokes_grant" | "ignored"

/** A presentation of a consumed refresh token outside the grace period, and where it was presented. */
export type ReuseListener = (payload: AdapterPayload, endpoint: Endpoint) => void

/** The endpoint a request path reaches, for the store's record of where a consumed token was presented. */
export const endpointOf = (url: string | undefined): Endpoint => {
  const path = (url ?? "/").split("?")[0]
  return path === "/token"
    ? "token"
    : path === "/token/revocation"
      ? "revocation"
      : path === "/token/introspection"
        ? "introspection"
        : "other"
}

/** The endpoint of the request being served; unset for lookups of the test controls. */
export const currentEndpoint = new AsyncLocalStorage<Endpoint>()

/**
 * In-memory storage for oidc-provider (unbounded, unlike oidc-provider's LRU-capped memory adapter,
 * which would evict live tokens under benchmark load). It keeps a grant index so a whole grant can be
 * revoked, and implements the refresh-token reuse grace period: within `graceSeconds` after a refresh
 * token was consumed (rotated away), `find` hands it out as not consumed, so oidc-provider's refresh
 * handler issues a new pair instead of treating the reuse as replay and revoking the grant.
 */
export class Store {
  readonly #entries = new Map<string, Entry>()
  readonly #grantMembers = new Map<string, Set<string>>()
  readonly #sessionUids = new Map<string, string>()
  readonly #userCodes = new Map<string, string>()
  readonly #graceSeconds: number
  readonly #sweeper: NodeJS.Timeout

  /**
   * Told of every presentation of a consumed refresh token outside the grace period (a reuse), by a
   * request; a lookup of the test controls is not a presentation.
   */
  readonly onReuse: ReuseListener
  readonly consumedRevocation: ConsumedRevocation

  constructor(
    graceSeconds: number,
    onReuse: ReuseListener = () => undefined,
    consumedRevocation: ConsumedRevocation = "revokes_grant"
  ) {
    this.#graceSeconds = graceSeconds
    this.onReuse = onReuse
    this.consumedRevocation = consumedRevocation
    this.#sweeper = setInterval(() => this.sweep(), 30_000)
    this.#sweeper.unref()
  }

  close(): void {
    clearInterval(this.#sweeper)
  }

  adapter(model: string): Adapter {
    return new ModelAdapter(this, model)
  }

  get(key: string): Entry | undefined {
    const entry = this.#entries.get(key)
    if (entry === undefined) return undefined
    if (entry.expiresAt <= Date.now()) {
      this.delete(key)
      return undefined
    }
    return entry
  }

  set(model: string, id: string, payload: AdapterPayload, expiresIn: number | undefined): void {
    const key = `${model}:${id}`
    this.delete(key)
    const expiresAt = typeof expiresIn === "number" ? Date.now() + expiresIn * 1000 : Number.POSITIVE_INFINITY
    this.#entries.set(key, { payload, expiresAt })
    if (GRANTABLE.has(model) && payload.grantId !== undefined) {
      const members = this.#grantMembers.get(payload.grantId) ?? new Set<string>()
      members.add(key)
      this.#grantMembers.set(payload.grantId, members)
    }
    if (model === "Session" && payload.uid !== undefined) this.#sessionUids.set(payload.uid, id)
    if (payload.userCode !== undefined) this.#userCodes.set(payload.userCode, id)
  }

  delete(key: string): void {
    const entry = this.#entries.get(key)
    if (entry === undefined) return
    this.#entries.delete(key)
    const { grantId, uid, userCode } = entry.payload
    if (grantId !== undefined) this.#grantMembers.get(grantId)?.delete(key)
    if (uid !== undefined && key.startsWith("Session:")) this.#sessionUids.delete(uid)
    if (userCode !== undefined) this.#userCodes.delete(userCode)
  }

  consume(key: string): void {
    const entry = this.get(key)
    if (entry === undefined) return
    entry.payload.consumed = Math.floor(Date.now() / 1000)
    entry.consumedAt ??= Date.now()
  }

  /** Whether a consumed entry is still within the reuse grace period. */
  inGrace(entry: Entry): boolean {
    return (
      this.#graceSeconds > 0 &&
      entry.consumedAt !== undefined &&
      Date.now() - entry.consumedAt < this.#graceSeconds * 1000
    )
  }

  sessionIdByUid(uid: string): string | undefined {
    return this.#sessionUids.get(uid)
  }

  idByUserCode(userCode: string): string | undefined {
    return this.#userCodes.get(userCode)
  }

  grantMembers(grantId: string): string[] {
    return [...(this.#grantMembers.get(grantId) ?? [])]
  }

  /** Removes every token of a grant (codes, access and refresh tokens) and the grant itself. */
  revokeGrant(grantId: string): void {
    for (const key of this.grantMembers(grantId)) this.delete(key)
    this.#grantMembers.delete(grantId)
    this.delete(`Grant:${grantId}`)
  }

  /** How many unexpired, unconsumed refresh tokens match: the ones that would still refresh. */
  countLiveRefreshTokens(predicate: (payload: AdapterPayload) => boolean): number {
    let live = 0
    const now = Date.now()
    for (const [key, entry] of this.#entries) {
      if (
        key.startsWith("RefreshToken:") &&
        entry.expiresAt > now &&
        entry.payload.consumed === undefined &&
        predicate(entry.payload)
      ) {
        live++
      }
    }
    return live
  }

  /** Ids of the stored grants whose payload matches. */
  findGrantIds(predicate: (payload: AdapterPayload) => boolean): string[] {
    const ids: string[] = []
    for (const [key, entry] of this.#entries) {
      if (key.startsWith("Grant:") && entry.expiresAt > Date.now() && predicate(entry.payload)) {
        ids.push(key.slice("Grant:".length))
      }
    }
    return ids
  }

  sweep(): void {
    const now = Date.now()
    for (const [key, entry] of this.#entries) if (entry.expiresAt <= now) this.delete(key)
    for (const [grantId, members] of this.#grantMembers) {
      if (members.size === 0 && !this.#entries.has(`Grant:${grantId}`)) this.#grantMembers.delete(grantId)
    }
  }
}

class ModelAdapter implements Adapter {
  readonly #store: Store
  readonly #model: string

  constructor(store: Store, model: string) {
    this.#store = store
    this.#model = model
  }

  #key(id: string): string {
    return `${this.#model}:${id}`
  }

  async upsert(id: string, payload: AdapterPayload, expiresIn?: number): Promise<void> {
    this.#store.set(this.#model, id, payload, expiresIn)
  }

  async find(id: string): Promise<AdapterPayload | undefined> {
    const entry = this.#store.get(this.#key(id))
    if (entry === undefined) return undefined
    if (this.#model === "RefreshToken" && entry.payload.consumed !== undefined) {
      if (this.#store.inGrace(entry)) {
        const { consumed: _consumed, ...unconsumed } = entry.payload
        return unconsumed
      }
      const endpoint = currentEndpoint.getStore()
      if (endpoint !== undefined) {
        this.#store.onReuse(entry.payload, endpoint)
        // A provider that treats a rotated-away token as unknown answers its revocation 200 and
        // revokes nothing (RFC 7009 section 2.2): the successor, if any, stays valid.
        if (endpoint === "revocation" && this.#store.consumedRevocation === "ignored") return undefined
      }
    }
    return entry.payload
  }

  async findByUid(uid: string): Promise<AdapterPayload | undefined> {
    const id = this.#store.sessionIdByUid(uid)
    return id === undefined ? undefined : this.find(id)
  }

  async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
    const id = this.#store.idByUserCode(userCode)
    return id === undefined ? undefined : this.find(id)
  }

  async consume(id: string): Promise<void> {
    this.#store.consume(this.#key(id))
  }

  async destroy(id: string): Promise<void> {
    this.#store.delete(this.#key(id))
  }

  async revokeByGrantId(grantId: string): Promise<void> {
    const prefix = `${this.#model}:`
    for (const key of this.#store.grantMembers(grantId)) if (key.startsWith(prefix)) this.#store.delete(key)
  }
}
