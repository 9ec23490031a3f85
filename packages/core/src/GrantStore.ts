import {
  Clock,
  Context,
  Data,
  Deferred,
  Duration,
  Effect,
  Either,
  Fiber,
  Layer,
  type Option,
  Random
} from "effect"
import type { StorageUnavailable } from "./Errors.js"
import {
  type GrantFilter,
  type GrantKey,
  type GrantRecord,
  grantKeyString,
  type PendingAuthorization
} from "./Grant.js"
import { makeMemoryDriver } from "./internal/memoryStore.js"

/**
 * The storage port. An adapter implements this small driver against a linearizable backend; core owns
 * every domain rule (encryption, versions, the refresh protocol) and derives the lease from it.
 *
 * Contract (stated as tests by `@token-broker/core/testing`):
 * - `insert` writes a new grant and answers "exists" when the key is taken. Versions of a key never
 *   repeat: a key that held a grant before (deleted since) is stored above the highest version it ever
 *   had, whatever `record.version` says (`record.version` for a key never used; core passes 1). So a
 *   writer that read a deleted grant can never compare-and-set onto its successor; read the record back
 *   to learn the version written.
 * - `compareAndSet` writes `next` only when the stored version equals `expectedVersion`, atomically;
 *   `next.version` is `expectedVersion + 1`. A missing record is a "conflict".
 * - `list` pages by key in `compareKeys` order (code-unit order: `COLLATE "C"` / `BINARY`).
 * - leases: `acquireLease` succeeds only when the lease is free or expired; `renewLease` and
 *   `releaseLease` act only for the owner that holds it. Expiry is measured by the backend's clock.
 * - pending authorizations are single use: `takePending` returns a record at most once, never an
 *   expired one.
 * Every operation fails only with `StorageUnavailable`.
 */
export interface GrantStoreDriver {
  readonly get: (key: GrantKey) => Effect.Effect<Option.Option<GrantRecord>, StorageUnavailable>
  /** Up to `limit` records matching `filter` that sort after `after` (exclusive), in `compareKeys` order. */
  readonly list: (
    filter: GrantFilter,
    after: GrantKey | null,
    limit: number
  ) => Effect.Effect<ReadonlyArray<GrantRecord>, StorageUnavailable>
  readonly insert: (record: GrantRecord) => Effect.Effect<"ok" | "exists", StorageUnavailable>
  readonly compareAndSet: (
    key: GrantKey,
    expectedVersion: number,
    next: GrantRecord
  ) => Effect.Effect<"ok" | "conflict", StorageUnavailable>
  readonly delete: (key: GrantKey) => Effect.Effect<boolean, StorageUnavailable>
  readonly acquireLease: (
    name: string,
    owner: string,
    ttl: Duration.Duration
  ) => Effect.Effect<boolean, StorageUnavailable>
  readonly renewLease: (
    name: string,
    owner: string,
    ttl: Duration.Duration
  ) => Effect.Effect<boolean, StorageUnavailable>
  readonly releaseLease: (name: string, owner: string) => Effect.Effect<void, StorageUnavailable>
  readonly putPending: (
    stateHash: string,
    record: PendingAuthorization
  ) => Effect.Effect<void, StorageUnavailable>
  readonly takePending: (
    stateHash: string
  ) => Effect.Effect<Option.Option<PendingAuthorization>, StorageUnavailable>
}

/** What the adapter says it can do; the conformance suite skips by flag, with the reason. */
export interface GrantStoreCapabilities {
  /** Leases exclude other OS processes (false for the in-memory store). */
  readonly crossProcessLeases: boolean
  /** Data outlives the process (false for the in-memory store). */
  readonly durable: boolean
}

export class GrantStore extends Context.Tag("@token-broker/core/GrantStore")<
  GrantStore,
  GrantStoreDriver & { readonly capabilities: GrantStoreCapabilities }
>() {}

/** The lease could not be taken within the wait budget. `lease` is the lease's name. */
export class LeaseTimeout extends Data.TaggedError("LeaseTimeout")<{ readonly lease: string }> {
  readonly code = "lease_timeout" as const
  override get message() {
    return `Lease "${this.lease}" is held elsewhere and was not free within the wait`
  }
}

/** The lease was lost while held (renewal failed): the holder must not write. `lease` is the lease's name. */
export class LeaseLost extends Data.TaggedError("LeaseLost")<{ readonly lease: string }> {
  readonly code = "lease_lost" as const
  override get message() {
    return `Lease "${this.lease}" may have ended while held; its holder must not write`
  }
}

export interface LeaseOptions {
  /** How long the lease lives without renewal; renewed every third of it while held. */
  readonly ttl: Duration.DurationInput
  /** How long to wait for a busy lease before giving up with `LeaseTimeout`. */
  readonly wait: Duration.DurationInput
}

/** A lease held by `withLease`, as its holder sees it on the local clock. */
export interface Lease {
  readonly name: string
  /**
   * Epoch ms (local clock) until which the lease is certainly held: the start of the last acquire or
   * renewal the store confirmed, plus the ttl. Past it another owner may hold it.
   */
  readonly heldUntil: Effect.Effect<number>
  /**
   * Fails with `LeaseLost` when the lease may end within `marginMs` (or the store said another owner
   * holds it). A holder checks before each step another owner must not overlap (an upstream call).
   */
  readonly ensureHeld: (marginMs?: number) => Effect.Effect<void, LeaseLost>
}

/** The name of a grant's lease: refreshes, revocation and re-encryption of the grant all take it. */
export const grantLeaseName = (key: GrantKey): string => `grant:${grantKeyString(key)}`

/**
 * Runs `use` while this process holds the exclusive lease `name` across every process sharing the
 * store. `owner` must be unique to this acquisition (two acquisitions with one owner are one lease).
 *
 * The lease is renewed every `ttl / 3`; each store call is bounded well under the ttl, and a failed or
 * hung renewal is retried until the lease's known expiry. Renewal never interrupts a `use` that takes the
 * `Lease`: it checks `ensureHeld` where it matters and decides (the refresh protocol never abandons a
 * request already sent upstream, and fences its write with compare-and-set). A plain effect, which cannot
 * check, is interrupted with `LeaseLost` once the lease may have expired.
 *
 * Acquiring waits for a busy lease up to `wait`. An acquisition that fails or times out is released all
 * the same: the store may have committed it before its answer was lost. The lease is released after
 * `use` (only if still ours).
 */
export const withLease = <A, E, R>(
  driver: GrantStoreDriver,
  name: string,
  owner: string,
  options: LeaseOptions,
  use: Effect.Effect<A, E, R> | ((lease: Lease) => Effect.Effect<A, E, R>)
): Effect.Effect<A, E | StorageUnavailable | LeaseTimeout | LeaseLost, R> => {
  const ttl = Duration.decode(options.ttl)
  const ttlMs = Duration.toMillis(ttl)
  const callTimeout = Duration.millis(Math.max(1, Math.floor(ttlMs / 4)))
  const renewEvery = Duration.millis(Math.max(1, Math.floor(ttlMs / 3)))
  // Bounded, and safe to run while this fiber is being interrupted: a hung release is left behind
  // (the lease then ends at its ttl).
  const release = driver
    .releaseLease(name, owner)
    .pipe(Effect.interruptible, Effect.disconnect, Effect.timeout(callTimeout), Effect.ignore)

  /** Acquires; answers the local time the successful attempt started. */
  const acquire = Effect.gen(function* () {
    for (let attempt = 0; ; attempt++) {
      const started = yield* Clock.currentTimeMillis
      const ok = yield* driver.acquireLease(name, owner, ttl)
      if (ok) return started
      // Exponential from 5 ms (x1.5), at most 100 ms, jittered: waiters poll a busy lease cheaply.
      yield* Effect.sleep(
        Duration.millis(Math.min(100, 5 * 1.5 ** attempt) * (0.8 + 0.4 * (yield* Random.next)))
      )
    }
  }).pipe(Effect.timeoutFail({ duration: options.wait, onTimeout: () => new LeaseTimeout({ lease: name }) }))

  const holding = (acquiredAt: number) =>
    Effect.gen(function* () {
      let heldUntil = acquiredAt + ttlMs
      let lost = false
      const lostSignal = yield* Deferred.make<void>()
      const markLost = Effect.suspend(() => {
        lost = true
        return Deferred.succeed(lostSignal, undefined)
      })
      const renewOnce = Effect.gen(function* () {
        const started = yield* Clock.currentTimeMillis
        const answer = yield* driver
          .renewLease(name, owner, ttl)
          .pipe(Effect.timeout(callTimeout), Effect.either)
        if (Either.isRight(answer)) {
          if (!answer.right) return yield* markLost
          heldUntil = Math.max(heldUntil, started + ttlMs)
          return
        }
        // A store error or a hung call: retry soon, until the known expiry passes.
        const now = yield* Clock.currentTimeMillis
        if (now >= heldUntil) return yield* markLost
        yield* Effect.sleep(Duration.millis(Math.max(1, Math.min(ttlMs / 10, heldUntil - now))))
        return yield* Effect.fail("retry" as const)
      }).pipe(Effect.retry({ while: (e) => e === "retry" }))
      const keepAlive = Effect.sleep(renewEvery).pipe(
        Effect.zipRight(renewOnce),
        Effect.repeat({ until: () => lost })
      )
      // Expiry on the local clock, whatever the renewals are doing (a hung call included).
      const expiryWatch = Effect.gen(function* () {
        while (!lost) {
          const now = yield* Clock.currentTimeMillis
          if (now >= heldUntil) return yield* markLost
          yield* Effect.sleep(Duration.millis(heldUntil - now))
        }
      })
      const lease: Lease = {
        name,
        heldUntil: Effect.sync(() => heldUntil),
        ensureHeld: (marginMs = 0) =>
          Effect.flatMap(Clock.currentTimeMillis, (now) =>
            lost || now + marginMs >= heldUntil ? Effect.fail(new LeaseLost({ lease: name })) : Effect.void
          )
      }
      const renewing = yield* Effect.forkScoped(keepAlive)
      const watching = yield* Effect.forkScoped(expiryWatch)
      const body = Effect.isEffect(use)
        ? Effect.raceFirst(
            use as Effect.Effect<A, E, R>,
            Effect.zipRight(Deferred.await(lostSignal), Effect.fail(new LeaseLost({ lease: name })))
          )
        : use(lease)
      return yield* body.pipe(
        Effect.ensuring(Effect.zipRight(Fiber.interrupt(renewing), Fiber.interrupt(watching)))
      )
    }).pipe(Effect.scoped)

  return Effect.uninterruptibleMask((restore) =>
    Effect.gen(function* () {
      const acquiredAt = yield* restore(acquire).pipe(Effect.onError(() => release))
      return yield* restore(holding(acquiredAt)).pipe(Effect.ensuring(release))
    })
  )
}

/** An in-memory store: linearizable within this process, nothing durable. For tests and local trials. */
export const makeMemory: Effect.Effect<Context.Tag.Service<GrantStore>> = Effect.map(
  makeMemoryDriver,
  (driver) => ({
    ...driver,
    capabilities: { crossProcessLeases: false, durable: false }
  })
)

export const layerMemory: Layer.Layer<GrantStore> = Layer.effect(GrantStore, makeMemory)
