import { randomUUID } from "node:crypto"
import {
  compareKeys,
  type GrantKey,
  type GrantRecord,
  GrantStore,
  type PendingAuthorization,
  StorageUnavailable
} from "@token-broker/core"
import { Clock, type Context, Duration, Effect, Layer, Option, type Scope } from "effect"
import { makeClient } from "./internal/client.js"
import { type KvEntry, makeKv } from "./internal/kv.js"
import { canonicalJson, decodeSegment, encodeSegment, parseGrant, parsePending } from "./internal/records.js"
import type { VaultConnectionOptions } from "./VaultConnection.js"
import type { VaultError } from "./VaultError.js"

export interface VaultGrantStoreOptions extends VaultConnectionOptions {
  /** Where the KV version 2 engine is mounted (default `secret`). */
  readonly mount?: string | undefined
  /** The folder inside the mount that holds everything of this store (default `token-broker`). */
  readonly prefix?: string | undefined
  /**
   * Extra time a lease of another owner must be past its expiry before it is taken over (default 0).
   * Lease times are measured on Vault's own clock (estimated from the server's timestamps), so this only
   * needs to cover doubt about that estimate.
   */
  readonly leaseClockMargin?: Duration.DurationInput | undefined
}

/** Vault leases exclude every process that talks to the same Vault; data lives in Vault. */
export const capabilities: GrantStore.GrantStoreCapabilities = { crossProcessLeases: true, durable: true }

const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0)

/** Decoded, sorted names of the sub-folders of a listing (names this store did not write are skipped). */
const folders = (names: ReadonlyArray<string>): Array<string> =>
  names
    .filter((n) => n.endsWith("/"))
    .map((n) => decodeSegment(n.slice(0, -1)))
    .filter((n): n is string => n !== undefined)
    .sort(cmp)

const leaves = (names: ReadonlyArray<string>): Array<string> =>
  names
    .filter((n) => !n.endsWith("/"))
    .map((n) => decodeSegment(n))
    .filter((n): n is string => n !== undefined)
    .sort(cmp)

/**
 * Builds the store: authenticates (token lookup or AppRole login, renewed in the background for the
 * life of the scope) and checks that the KV mount answers. Fails with `StorageUnavailable` whose `cause`
 * is a `VaultError` naming the reason (sealed, permission denied, missing mount, expired token, ...).
 */
export const make = (
  options: VaultGrantStoreOptions
): Effect.Effect<Context.Tag.Service<GrantStore.GrantStore>, StorageUnavailable, Scope.Scope> =>
  Effect.gen(function* () {
    const unavailable =
      (operation: string) =>
      (error: VaultError): StorageUnavailable =>
        new StorageUnavailable({ operation, message: error.message, cause: error })
    const client = yield* makeClient(options).pipe(Effect.mapError(unavailable("connect")))
    const kv = makeKv(client, (options.mount ?? "secret").replace(/^\/+|\/+$/g, ""))
    const prefix = (options.prefix ?? "token-broker").replace(/^\/+|\/+$/g, "")
    const margin = Duration.toMillis(Duration.decode(options.leaseClockMargin ?? 0))

    const grantsFolder = `${prefix}/grants`
    const grantPath = (key: GrantKey) =>
      `${grantsFolder}/${encodeSegment(key.tenant)}/${encodeSegment(key.subject)}/${encodeSegment(key.provider)}`
    const leasePath = (name: string) => `${prefix}/leases/${encodeSegment(name)}`
    const pendingPath = (stateHash: string) => `${prefix}/pending/${encodeSegment(stateHash)}`

    yield* kv.list(grantsFolder).pipe(Effect.mapError(unavailable("connect")))

    const invalidRecord = (operation: string, path: string) =>
      new StorageUnavailable({
        operation,
        message: `The secret at ${path} is not a token-broker record (written by another tool?)`
      })

    /**
     * A deleted grant is a tombstone version, never a metadata delete: KV versions restart at 1 after
     * one, and a writer that read the deleted grant could compare-and-set onto a re-consented one.
     */
    const isTombstone = (entry: KvEntry) => entry.data.tombstone === true

    /** The record of an entry; its version is the KV version (the fence). */
    const recordOf = (operation: string, path: string, key: GrantKey, entry: KvEntry) => {
      const record = parseGrant(entry.data)
      if (
        record === undefined ||
        record.tenant !== key.tenant ||
        record.subject !== key.subject ||
        record.provider !== key.provider
      ) {
        return Effect.fail(invalidRecord(operation, path))
      }
      return Effect.succeed<GrantRecord>({ ...record, version: entry.version })
    }

    const readGrant = (operation: string, key: GrantKey) => {
      const path = grantPath(key)
      return kv.read(path).pipe(
        Effect.mapError(unavailable(operation)),
        Effect.flatMap(
          Option.match({
            onNone: () => Effect.succeed(Option.none<GrantRecord>()),
            onSome: (entry) =>
              isTombstone(entry)
                ? Effect.succeed(Option.none<GrantRecord>())
                : Effect.map(recordOf(operation, path, key, entry), Option.some)
          })
        )
      )
    }

    /**
     * After a check-and-set mismatch: was it our own write, landed by an earlier attempt whose answer was
     * lost (a retry)? The record we wrote carries fresh envelopes, so equality identifies it.
     */
    const landed = (operation: string, key: GrantKey, written: GrantRecord, version: number) =>
      Effect.map(
        readGrant(operation, key),
        Option.match({
          onNone: () => false,
          onSome: (stored) => stored.version === version && canonicalJson(stored) === canonicalJson(written)
        })
      )

    const get: GrantStore.GrantStoreDriver["get"] = (key) => readGrant("get", key)

    const insert: GrantStore.GrantStoreDriver["insert"] = (record) =>
      Effect.gen(function* () {
        const path = grantPath(record)
        // cas 0 for a key never used; above a tombstone (or a deleted latest version) for one used before
        let cas = 0
        for (let round = 0; round < 5; round++) {
          const stored: GrantRecord = { ...record, version: cas + 1 }
          const result = yield* kv
            .write(path, { ...stored }, cas)
            .pipe(Effect.mapError(unavailable("insert")))
          if (result._tag === "Written") return "ok" as const
          if (yield* landed("insert", record, stored, cas + 1)) return "ok" as const
          const meta = yield* kv.readMetadata(path).pipe(Effect.mapError(unavailable("insert")))
          if (Option.isNone(meta)) {
            cas = 0
            continue
          }
          const latest = yield* kv.read(path).pipe(Effect.mapError(unavailable("insert")))
          if (Option.isSome(latest) && !isTombstone(latest.value)) return "exists" as const
          cas = meta.value.currentVersion
        }
        return yield* new StorageUnavailable({
          operation: "insert",
          message: `The grant at ${path} kept changing while it was inserted`
        })
      })

    const compareAndSet: GrantStore.GrantStoreDriver["compareAndSet"] = (key, expectedVersion, next) =>
      Effect.gen(function* () {
        // cas=0 would create a missing record: a version below 1 never matches a stored grant
        if (!Number.isInteger(expectedVersion) || expectedVersion < 1) return "conflict" as const
        // the key names the record (callers may pass a whole record as the key: only its key fields count)
        const stored: GrantRecord = {
          ...next,
          tenant: key.tenant,
          subject: key.subject,
          provider: key.provider,
          version: expectedVersion + 1
        }
        const result = yield* kv
          .write(grantPath(key), { ...stored }, expectedVersion)
          .pipe(Effect.mapError(unavailable("compareAndSet")))
        if (result._tag === "Written") return "ok" as const
        return (yield* landed("compareAndSet", key, stored, expectedVersion + 1))
          ? ("ok" as const)
          : ("conflict" as const)
      })

    const remove: GrantStore.GrantStoreDriver["delete"] = (key) =>
      Effect.gen(function* () {
        const path = grantPath(key)
        const writeId = randomUUID()
        let removed = false
        for (let round = 0; round < 5 && !removed; round++) {
          const found = yield* kv.read(path).pipe(Effect.mapError(unavailable("delete")))
          if (Option.isNone(found)) break
          if (isTombstone(found.value)) {
            // ours when an earlier attempt of this write landed but its answer was lost
            removed = found.value.data.writeId === writeId
            break
          }
          const write = yield* kv
            .write(path, { tombstone: true, writeId }, found.value.version)
            .pipe(Effect.mapError(unavailable("delete")))
          removed = write._tag === "Written"
        }
        // the data of every earlier version (old ciphertexts) goes for good; the counter stays
        const meta = yield* kv.readMetadata(path).pipe(Effect.mapError(unavailable("delete")))
        if (Option.isSome(meta)) {
          const older = meta.value.kept.filter((n) => n < meta.value.currentVersion)
          yield* kv.destroyVersions(path, older).pipe(Effect.mapError(unavailable("delete")))
        }
        return removed
      })

    const list: GrantStore.GrantStoreDriver["list"] = (filter, after, limit) =>
      Effect.gen(function* () {
        const out: Array<GrantRecord> = []
        if (limit <= 0) return out
        const names = (folder: string) => kv.list(folder).pipe(Effect.mapError(unavailable("list")))
        const tenants =
          filter.tenant !== undefined ? [filter.tenant] : folders(yield* names(`${grantsFolder}/`))
        for (const tenant of tenants) {
          if (after !== null && cmp(tenant, after.tenant) < 0) continue
          const tenantFolder = `${grantsFolder}/${encodeSegment(tenant)}`
          const subjects =
            filter.subject !== undefined ? [filter.subject] : folders(yield* names(`${tenantFolder}/`))
          for (const subject of subjects) {
            if (after !== null && (cmp(tenant, after.tenant) || cmp(subject, after.subject)) < 0) continue
            const providers = leaves(yield* names(`${tenantFolder}/${encodeSegment(subject)}/`)).filter(
              (provider) =>
                (filter.provider === undefined || provider === filter.provider) &&
                (after === null || compareKeys({ tenant, subject, provider }, after) > 0)
            )
            const records = yield* Effect.forEach(
              providers,
              (provider) => readGrant("list", { tenant, subject, provider }),
              { concurrency: 8 }
            )
            for (const record of records) {
              if (
                Option.isSome(record) &&
                (filter.status === undefined || record.value.status === filter.status)
              ) {
                out.push(record.value)
                if (out.length >= limit) return out
              }
            }
          }
        }
        return out
      })

    // Leases: one secret per lease holding {owner, ttlMs, writeId}; a lease lives until the server time
    // of the version that wrote it plus its ttl. Every change is a check-and-set on the version read.
    interface LeaseData {
      readonly owner: string | null
      readonly ttlMs: number
      readonly writeId: string
    }
    const leaseOf = (entry: KvEntry): LeaseData => {
      const { owner, ttlMs, writeId } = entry.data
      return {
        owner: typeof owner === "string" ? owner : null,
        ttlMs: typeof ttlMs === "number" ? ttlMs : 0,
        writeId: typeof writeId === "string" ? writeId : ""
      }
    }
    const serverNow = Effect.map(Clock.currentTimeMillis, (local) => client.clock.now(local))

    /** Writes the lease at `cas`; true when it landed (including by an earlier attempt of this write). */
    const writeLease = (operation: string, path: string, data: LeaseData, cas: number) =>
      Effect.gen(function* () {
        const result = yield* kv.write(path, { ...data }, cas).pipe(Effect.mapError(unavailable(operation)))
        if (result._tag === "Written") return true
        const now = yield* kv.read(path).pipe(Effect.mapError(unavailable(operation)))
        return Option.isSome(now) && leaseOf(now.value).writeId === data.writeId
      })

    const acquireLease: GrantStore.GrantStoreDriver["acquireLease"] = (name, owner, ttl) =>
      Effect.gen(function* () {
        const path = leasePath(name)
        const data: LeaseData = { owner, ttlMs: Duration.toMillis(ttl), writeId: randomUUID() }
        // a few rounds: a check-and-set mismatch may be the holder releasing, not a new holder
        for (let round = 0; round < 3; round++) {
          const current = yield* kv.read(path).pipe(Effect.mapError(unavailable("acquireLease")))
          if (Option.isNone(current)) {
            if (yield* writeLease("acquireLease", path, data, 0)) return true
            continue
          }
          const lease = leaseOf(current.value)
          const now = yield* serverNow
          const free =
            lease.owner === null ||
            lease.owner === owner ||
            current.value.createdTime + lease.ttlMs + margin < now.earliest
          if (!free) return false
          if (yield* writeLease("acquireLease", path, data, current.value.version)) return true
        }
        return false
      })

    const renewLease: GrantStore.GrantStoreDriver["renewLease"] = (name, owner, ttl) =>
      Effect.gen(function* () {
        const path = leasePath(name)
        const current = yield* kv.read(path).pipe(Effect.mapError(unavailable("renewLease")))
        if (Option.isNone(current)) return false
        const lease = leaseOf(current.value)
        const now = yield* serverNow
        // the holder judges its own lease pessimistically: expired as soon as it may have expired
        if (lease.owner !== owner || current.value.createdTime + lease.ttlMs <= now.latest) return false
        const data: LeaseData = { owner, ttlMs: Duration.toMillis(ttl), writeId: randomUUID() }
        return yield* writeLease("renewLease", path, data, current.value.version)
      })

    const releaseLease: GrantStore.GrantStoreDriver["releaseLease"] = (name, owner) =>
      Effect.gen(function* () {
        const path = leasePath(name)
        const current = yield* kv.read(path).pipe(Effect.mapError(unavailable("releaseLease")))
        if (Option.isNone(current) || leaseOf(current.value).owner !== owner) return
        // a check-and-set, never a delete: a lease taken over meanwhile is left alone (F4)
        yield* writeLease(
          "releaseLease",
          path,
          { owner: null, ttlMs: 0, writeId: randomUUID() },
          current.value.version
        )
      })

    // Pending authorizations: one secret each; taking one is a check-and-set that marks it taken (only one
    // taker can win it), then the secret is destroyed.
    const putPending: GrantStore.GrantStoreDriver["putPending"] = (stateHash, record) =>
      Effect.gen(function* () {
        const path = pendingPath(stateHash)
        const data = { ...record, writeId: randomUUID() }
        let cas = 0
        for (let round = 0; round < 5; round++) {
          const result = yield* kv.write(path, data, cas).pipe(Effect.mapError(unavailable("putPending")))
          if (result._tag === "Written") return
          const current = yield* kv.read(path).pipe(Effect.mapError(unavailable("putPending")))
          if (Option.isSome(current) && current.value.data.writeId === data.writeId) return
          cas = Option.isSome(current) ? current.value.version : 0
        }
        return yield* new StorageUnavailable({
          operation: "putPending",
          message: `The pending authorization at ${path} kept changing while it was written`
        })
      })

    const takePending: GrantStore.GrantStoreDriver["takePending"] = (stateHash) =>
      Effect.gen(function* () {
        const path = pendingPath(stateHash)
        const current = yield* kv.read(path).pipe(Effect.mapError(unavailable("takePending")))
        if (Option.isNone(current) || current.value.data.takenBy !== undefined) {
          return Option.none<PendingAuthorization>()
        }
        const takenBy = randomUUID()
        const result = yield* kv
          .write(path, { takenBy }, current.value.version)
          .pipe(Effect.mapError(unavailable("takePending")))
        if (result._tag === "CasMismatch") {
          const now = yield* kv.read(path).pipe(Effect.mapError(unavailable("takePending")))
          if (Option.isNone(now) || now.value.data.takenBy !== takenBy)
            return Option.none<PendingAuthorization>()
        }
        yield* kv.destroy(path).pipe(Effect.mapError(unavailable("takePending")))
        const record = parsePending(current.value.data)
        if (record === undefined) return yield* invalidRecordFail("takePending", path)
        const now = yield* Clock.currentTimeMillis
        return record.expiresAt > now ? Option.some(record) : Option.none<PendingAuthorization>()
      })
    const invalidRecordFail = (operation: string, path: string) => Effect.fail(invalidRecord(operation, path))

    return {
      capabilities,
      get,
      list,
      insert,
      compareAndSet,
      delete: remove,
      acquireLease,
      renewLease,
      releaseLease,
      putPending,
      takePending
    }
  })

/**
 * The `GrantStore` on Vault KV v2. Built from plain options, so a child process can build the same
 * store: `layer({ address, auth: { token }, mount: "secret", prefix: "token-broker" })`.
 */
export const layer = (
  options: VaultGrantStoreOptions
): Layer.Layer<GrantStore.GrantStore, StorageUnavailable> =>
  Layer.scoped(GrantStore.GrantStore, make(options))
