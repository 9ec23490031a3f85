import { type GrantStore, StorageUnavailable } from "@token-broker/core"
import { Duration, Effect, Option } from "effect"
import type { StoreOp } from "./Schedule.js"

type Store = GrantStore.GrantStore["Type"]

/** Faults armed on one broker's store: failing operations and a stalling renewal. */
export interface StoreFaults {
  /** Arms the next `count` calls of `op` to fail with StorageUnavailable. */
  readonly failNext: (op: StoreOp, count: number) => void
  /** The next renewal waits this long before it asks the store (longer than the lease lives). */
  readonly stallNextRenewal: (ms: number) => void
  readonly clear: () => void
}

export interface FaultyStoreOptions {
  /**
   * The deliberately broken store of the explorer's control: every write keeps the refresh token that
   * was stored before it, so a rotated refresh token is dropped. The invariants must catch it.
   */
  readonly dropRotatedRefreshToken?: boolean | undefined
}

/**
 * A real store (the SQLite file) behind a fault-injecting wrapper. The wrapper only fails or delays
 * calls the broker makes: every call that goes through is the real store's.
 */
export const faultyStore = (
  store: Store,
  options: FaultyStoreOptions = {}
): { readonly store: Store; readonly faults: StoreFaults } => {
  const armed = new Map<StoreOp, number>()
  let stallMs = 0
  const injected = <A>(op: StoreOp, effect: Effect.Effect<A, StorageUnavailable>) =>
    Effect.suspend(() => {
      const left = armed.get(op) ?? 0
      if (left <= 0) return effect
      armed.set(op, left - 1)
      return Effect.fail(
        new StorageUnavailable({ operation: op, message: `explorer: injected failure of ${op}` })
      )
    })
  const wrapped: Store = {
    ...store,
    get: (key) => injected("get", store.get(key)),
    compareAndSet: (key, expected, next) =>
      injected(
        "compareAndSet",
        options.dropRotatedRefreshToken === true
          ? Effect.flatMap(store.get(key), (current) =>
              store.compareAndSet(
                key,
                expected,
                Option.match(current, {
                  onNone: () => next,
                  onSome: (c) => ({ ...next, refreshToken: c.refreshToken })
                })
              )
            )
          : store.compareAndSet(key, expected, next)
      ),
    acquireLease: (name, owner, ttl) => injected("acquireLease", store.acquireLease(name, owner, ttl)),
    renewLease: (name, owner, ttl) =>
      Effect.suspend(() => {
        const stall = stallMs
        stallMs = 0
        const renew = injected("renewLease", store.renewLease(name, owner, ttl))
        return stall > 0 ? Effect.zipRight(Effect.sleep(Duration.millis(stall)), renew) : renew
      }),
    releaseLease: (name, owner) => injected("releaseLease", store.releaseLease(name, owner))
  }
  return {
    store: wrapped,
    faults: {
      failNext: (op, count) => {
        armed.set(op, (armed.get(op) ?? 0) + count)
      },
      stallNextRenewal: (ms) => {
        stallMs = ms
      },
      clear: () => {
        armed.clear()
        stallMs = 0
      }
    }
  }
}
