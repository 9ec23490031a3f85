import { Context, Duration, Effect, Layer, type Option, Schedule } from "effect"
import type { StorageUnavailable } from "./Errors.js"
import type { GrantFilter, GrantKey, GrantRecord, PendingAuthorization } from "./Grant.js"
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

/** The lease could not be taken within the wait budget. */
export class LeaseTimeout {
  readonly _tag = "LeaseTimeout"
  constructor(readonly name: string) {}
}

/** The lease was lost while held (renewal failed): the holder must not write. */
export class LeaseLost {
  readonly _tag = "LeaseLost"
  constructor(readonly name: string) {}
}

export interface LeaseOptions {
  /** How long the lease lives without renewal; renewed every third of it while held. */
  readonly ttl: Duration.Duration
  /** How long to wait for a busy lease before giving up with `LeaseTimeout`. */
  readonly wait: Duration.Duration
}

/**
 * Runs `use` while this process holds the exclusive lease `name` across every process sharing the
 * store. The lease is renewed every `ttl / 3` while `use` runs; when a renewal fails `use` is
 * interrupted and the result is `LeaseLost`, so a holder that lost its lease never writes. The lease is
 * released afterwards (only if still ours). Waiting polls with jittered backoff.
 */
export const withLease = <A, E, R>(
  driver: GrantStoreDriver,
  name: string,
  owner: string,
  options: LeaseOptions,
  use: Effect.Effect<A, E, R>
): Effect.Effect<A, E | StorageUnavailable | LeaseTimeout | LeaseLost, R> => {
  const acquire = driver.acquireLease(name, owner, options.ttl).pipe(
    Effect.flatMap((ok) => (ok ? Effect.void : Effect.fail("busy" as const))),
    Effect.retry({
      while: (e) => e === "busy",
      schedule: Schedule.exponential("5 millis", 1.5).pipe(
        Schedule.union(Schedule.spaced("100 millis")),
        Schedule.jittered
      )
    }),
    Effect.timeoutFail({ duration: options.wait, onTimeout: () => new LeaseTimeout(name) }),
    Effect.catchIf(
      (e): e is "busy" => e === "busy",
      () => Effect.fail(new LeaseTimeout(name))
    )
  )
  const renewEvery = Duration.millis(Math.max(1, Math.floor(Duration.toMillis(options.ttl) / 3)))
  const keepAlive = driver.renewLease(name, owner, options.ttl).pipe(
    Effect.flatMap((held) => (held ? Effect.void : Effect.fail(new LeaseLost(name)))),
    Effect.catchTag("StorageUnavailable", () => Effect.fail(new LeaseLost(name))),
    Effect.delay(renewEvery),
    Effect.forever
  )
  return Effect.acquireUseRelease(
    acquire,
    () => Effect.raceFirst(use, keepAlive),
    () => driver.releaseLease(name, owner).pipe(Effect.ignore)
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
