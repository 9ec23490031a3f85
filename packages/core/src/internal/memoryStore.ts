import { Clock, Duration, Effect, Option } from "effect"
import {
  compareKeys,
  type GrantKey,
  type GrantRecord,
  grantKeyString,
  type PendingAuthorization
} from "../Grant.js"
import type { GrantStoreDriver } from "../GrantStore.js"
import { matchesFilter } from "./cursor.js"

/**
 * The in-memory GrantStore driver: linearizable within one process (every operation is synchronous on
 * a Map), nothing durable, leases exclusive within the process only. For tests and single-process dev.
 */
export const makeMemoryDriver: Effect.Effect<GrantStoreDriver> = Effect.sync(() => {
  const grants = new Map<string, GrantRecord>()
  const leases = new Map<string, { owner: string; expiresAt: number }>()
  const pending = new Map<string, PendingAuthorization>()
  /** The last version of each deleted grant: an insert starts above it, so versions never repeat. */
  const tombstones = new Map<string, number>()
  const copy = (record: GrantRecord): GrantRecord => structuredClone(record)

  const driver: GrantStoreDriver = {
    get: (key: GrantKey) =>
      Effect.sync(() => Option.fromNullable(grants.get(grantKeyString(key))).pipe(Option.map(copy))),
    list: (filter, after, limit) =>
      Effect.sync(() =>
        [...grants.values()]
          .filter((r) => matchesFilter(r, filter) && (after === null || compareKeys(r, after) > 0))
          .sort(compareKeys)
          .slice(0, limit)
          .map(copy)
      ),
    insert: (record) =>
      Effect.sync(() => {
        const id = grantKeyString(record)
        if (grants.has(id)) return "exists" as const
        const last = tombstones.get(id) ?? 0
        grants.set(id, { ...copy(record), version: record.version > last ? record.version : last + 1 })
        return "ok" as const
      }),
    compareAndSet: (key, expectedVersion, next) =>
      Effect.sync(() => {
        const id = grantKeyString(key)
        const current = grants.get(id)
        if (current === undefined || current.version !== expectedVersion) return "conflict" as const
        grants.set(id, copy(next))
        return "ok" as const
      }),
    delete: (key) =>
      Effect.sync(() => {
        const id = grantKeyString(key)
        const current = grants.get(id)
        if (current === undefined) return false
        tombstones.set(id, Math.max(current.version, tombstones.get(id) ?? 0))
        return grants.delete(id)
      }),
    acquireLease: (name, owner, ttl) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        const lease = leases.get(name)
        if (lease !== undefined && lease.owner !== owner && lease.expiresAt > now) return false
        leases.set(name, { owner, expiresAt: now + Duration.toMillis(ttl) })
        return true
      }),
    renewLease: (name, owner, ttl) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        const lease = leases.get(name)
        if (lease === undefined || lease.owner !== owner || lease.expiresAt <= now) return false
        leases.set(name, { owner, expiresAt: now + Duration.toMillis(ttl) })
        return true
      }),
    releaseLease: (name, owner) =>
      Effect.sync(() => {
        if (leases.get(name)?.owner === owner) leases.delete(name)
      }),
    putPending: (stateHash, record) =>
      Effect.sync(() => {
        pending.set(stateHash, structuredClone(record))
      }),
    takePending: (stateHash) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        const record = pending.get(stateHash)
        pending.delete(stateHash)
        return Option.fromNullable(record).pipe(Option.filter((r) => r.expiresAt > now))
      })
  }
  return driver
})
