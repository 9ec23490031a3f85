/** Which token-endpoint requests to count; omitted fields match everything. */
export interface CounterFilter {
  readonly grantType?: string
  readonly clientId?: string
}

export interface CounterSnapshot {
  readonly total: number
  readonly byGrantType: Readonly<Record<string, number>>
  readonly byClientId: Readonly<Record<string, number>>
  readonly entries: ReadonlyArray<{
    readonly grantType: string
    readonly clientId: string
    readonly count: number
  }>
}

/** Requests without a recognisable grant type or client id are counted under this key. */
export const UNKNOWN = "(none)"

/**
 * Counts the requests that reached the token endpoint, by grant type and client id. A request is
 * counted before fault injection decides its answer, so an injected failure still counts.
 */
export class TokenCounters {
  #counts = new Map<string, { grantType: string; clientId: string; count: number }>()

  record(grantType: string | undefined, clientId: string | undefined): void {
    const g = grantType ?? UNKNOWN
    const c = clientId ?? UNKNOWN
    const key = JSON.stringify([g, c])
    const entry = this.#counts.get(key)
    if (entry === undefined) this.#counts.set(key, { grantType: g, clientId: c, count: 1 })
    else entry.count += 1
  }

  count(filter: CounterFilter = {}): number {
    let total = 0
    for (const entry of this.#counts.values()) {
      if (filter.grantType !== undefined && filter.grantType !== entry.grantType) continue
      if (filter.clientId !== undefined && filter.clientId !== entry.clientId) continue
      total += entry.count
    }
    return total
  }

  reset(): void {
    this.#counts.clear()
  }

  snapshot(): CounterSnapshot {
    const byGrantType: Record<string, number> = {}
    const byClientId: Record<string, number> = {}
    const entries = [...this.#counts.values()].map((entry) => ({ ...entry }))
    for (const { grantType, clientId, count } of entries) {
      byGrantType[grantType] = (byGrantType[grantType] ?? 0) + count
      byClientId[clientId] = (byClientId[clientId] ?? 0) + count
    }
    return { total: this.count(), byGrantType, byClientId, entries }
  }
}
