import { Effect } from "effect"
import { makePermits, type Permits } from "./permits.js"

/** Refresh capacity per provider: at most `maxConcurrentRefreshes` refreshes of one provider at a time. */
export const makeProviderCapacity = (maxConcurrentRefreshes: number) => {
  const capacity = new Map<string, Permits>()
  return (provider: string) => {
    let permits = capacity.get(provider)
    if (permits === undefined) {
      permits = makePermits(maxConcurrentRefreshes)
      capacity.set(provider, permits)
    }
    return permits
  }
}

/**
 * One refresh (or revocation) per grant at a time in this process, before the cluster-wide lease is asked.
 * A grant's lock lives only while someone holds or waits for it, so the map stays as small as the work.
 */
export const makeGrantLocks = () => {
  const grantLocks = new Map<string, { permits: Permits; users: number }>()
  return <A, E>(grantId: string, effect: Effect.Effect<A, E>): Effect.Effect<A, E> =>
    Effect.acquireUseRelease(
      Effect.sync(() => {
        let lock = grantLocks.get(grantId)
        if (lock === undefined) {
          lock = { permits: makePermits(1), users: 0 }
          grantLocks.set(grantId, lock)
        }
        lock.users += 1
        return lock
      }),
      (lock) => lock.permits.withPermit(effect),
      (lock) =>
        Effect.sync(() => {
          lock.users -= 1
          if (lock.users === 0) grantLocks.delete(grantId)
        })
    )
}
