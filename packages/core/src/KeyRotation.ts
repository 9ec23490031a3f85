import { type Duration, Effect, Option } from "effect"
import type { DecryptionFailed, StorageUnavailable } from "./Errors.js"
import type { GrantFilter, GrantKey, GrantRecord } from "./Grant.js"
import { GrantStore, grantLeaseName, withLease } from "./GrantStore.js"
import { randomToken } from "./internal/random.js"
import { sharedTokensOf } from "./internal/sharedTokens.js"
import { aadFor, KeyRing } from "./KeyRing.js"

/**
 * Re-encrypts every grant's secrets under the key ring's current key. Resumable by construction: a
 * grant already under the current key is skipped, so a run killed halfway and started again finishes
 * the rest. Each grant is rewritten under its lease (the one refreshes take), so a re-encryption never
 * lands between a refresh's answer from the provider and its write; the write is a compare-and-set all
 * the same, and nothing is ever written that was not first decrypted. A grant whose lease stays busy
 * (a refresh that does not finish) is counted in `busy` and left for the next run.
 */
export interface ReencryptProgress {
  /** Grants looked at so far. */
  readonly scanned: number
  /** Grants rewritten under the current key (or that would be, in a dry run). */
  readonly reencrypted: number
  /** Grants already under the current key. */
  readonly current: number
  /** Grants that could not be decrypted (left untouched; see `failures`). */
  readonly failed: number
}

export interface ReencryptResult extends ReencryptProgress {
  /** Grants skipped because their lease stayed busy for the whole wait (run again to finish them). */
  readonly busy: number
  readonly failures: ReadonlyArray<{ readonly key: GrantKey; readonly error: DecryptionFailed }>
  /** Key ids still found on grants after the run (the current key id alone when all are done). */
  readonly kidsInUse: ReadonlyArray<string>
}

export interface ReencryptOptions {
  readonly filter?: GrantFilter | undefined
  /** Count what would change without writing. */
  readonly dryRun?: boolean | undefined
  /** Grants read per page. Default 200. */
  readonly pageSize?: number | undefined
  /**
   * The grant lease taken for each rewrite. Default: 10 s ttl (renewed while held), 15 s wait: the wait
   * outlives a lease left by a rotation that was killed mid-run, so running it again finishes those grants.
   */
  readonly lease?:
    | { readonly ttl?: Duration.DurationInput; readonly wait?: Duration.DurationInput }
    | undefined
  /** Grants rewritten at the same time (each under its own lease). Default 16. */
  readonly concurrency?: number | undefined
  /** Called after every page. */
  readonly onProgress?: ((progress: ReencryptProgress) => Effect.Effect<void>) | undefined
}

/** The key ids of a grant's envelopes ("unknown" for an envelope this ring cannot name). */
const kidsOf = (ring: { kidOf: (envelope: string) => string | undefined }, record: GrantRecord) =>
  [record.refreshToken, ...sharedTokensOf(record).map((token) => token.envelope)].map(
    (e) => ring.kidOf(e) ?? "unknown"
  )

export const reencryptAll = (
  options: ReencryptOptions = {}
): Effect.Effect<ReencryptResult, StorageUnavailable, GrantStore | KeyRing> =>
  Effect.gen(function* () {
    const store = yield* GrantStore
    const ring = yield* KeyRing
    const pageSize = options.pageSize ?? 200
    const failures: Array<{ key: GrantKey; error: DecryptionFailed }> = []
    const kidsInUse = new Set<string>()
    let scanned = 0
    let reencrypted = 0
    let current = 0

    const rewrap = (envelope: string, key: GrantKey, field: string) =>
      Effect.flatMap(ring.decrypt(envelope, aadFor(key, field)), (plain) =>
        ring.encrypt(plain, aadFor(key, field))
      )

    const leaseOptions = {
      ttl: options.lease?.ttl ?? "10 seconds",
      wait: options.lease?.wait ?? "15 seconds"
    }
    const owner = `key-rotation/${randomToken(9)}`
    let busy = 0

    /** Rewrites one grant under its lease; on a concurrent write, re-reads and tries again on the new version. */
    const reencryptOne = (
      start: GrantRecord
    ): Effect.Effect<"done" | "current" | "busy", StorageUnavailable | DecryptionFailed> =>
      options.dryRun === true || kidsOf(ring, start).every((kid) => kid === ring.currentKid)
        ? rewriteOne(start)
        : withLease(store, grantLeaseName(start), owner, leaseOptions, () =>
            Effect.flatMap(store.get(start), (fresh) =>
              Option.isNone(fresh) ? Effect.succeed("current" as const) : rewriteOne(fresh.value)
            )
          ).pipe(
            Effect.catchIf(
              (e) => e._tag === "LeaseTimeout" || e._tag === "LeaseLost",
              () => Effect.succeed("busy" as const)
            )
          )

    const rewriteOne = (
      start: GrantRecord
    ): Effect.Effect<"done" | "current", StorageUnavailable | DecryptionFailed> =>
      Effect.gen(function* () {
        let record = start
        while (true) {
          if (kidsOf(ring, record).every((kid) => kid === ring.currentKid)) return "current" as const
          if (options.dryRun === true) {
            // Prove the grant decrypts, without writing.
            yield* ring.decrypt(record.refreshToken, aadFor(record, "refresh_token"))
            return "done" as const
          }
          const next: GrantRecord = {
            ...record,
            version: record.version + 1,
            refreshToken: yield* rewrap(record.refreshToken, record, "refresh_token"),
            accessToken:
              record.accessToken === null
                ? null
                : {
                    ...record.accessToken,
                    envelope: yield* rewrap(record.accessToken.envelope, record, "access_token")
                  },
            ...(record.scopedAccessTokens === undefined
              ? {}
              : {
                  scopedAccessTokens: yield* Effect.forEach(record.scopedAccessTokens, (token) =>
                    Effect.map(rewrap(token.envelope, record, "access_token"), (envelope) => ({
                      ...token,
                      envelope
                    }))
                  )
                })
          }
          if ((yield* store.compareAndSet(record, record.version, next)) === "ok") return "done" as const
          const fresh = yield* store.get(record)
          if (Option.isNone(fresh)) return "current" as const
          record = fresh.value
        }
      })

    let after: GrantKey | null = null
    while (true) {
      const page: ReadonlyArray<GrantRecord> = yield* store.list(options.filter ?? {}, after, pageSize)
      const one = (record: GrantRecord) =>
        Effect.gen(function* () {
          scanned += 1
          const outcome = yield* Effect.either(reencryptOne(record))
          if (outcome._tag === "Left") {
            if (outcome.left._tag === "StorageUnavailable") return yield* Effect.fail(outcome.left)
            failures.push({
              key: { tenant: record.tenant, subject: record.subject, provider: record.provider },
              error: outcome.left
            })
            for (const kid of kidsOf(ring, record)) kidsInUse.add(kid)
          } else if (outcome.right === "busy") {
            busy += 1
            for (const kid of kidsOf(ring, record)) kidsInUse.add(kid)
          } else if (outcome.right === "current") {
            current += 1
            kidsInUse.add(ring.currentKid)
          } else {
            reencrypted += 1
            if (options.dryRun === true) for (const kid of kidsOf(ring, record)) kidsInUse.add(kid)
            else kidsInUse.add(ring.currentKid)
          }
        })
      // Several grants at a time: each rewrite waits on its own lease and store round trips, so one at a
      // time made a 10,000-grant rotation several times slower once rewrites took the grant's lease.
      yield* Effect.forEach(page, one, { concurrency: options.concurrency ?? 16, discard: true })
      if (options.onProgress !== undefined) {
        yield* options.onProgress({ scanned, reencrypted, current, failed: failures.length })
      }
      const last = page[page.length - 1]
      if (page.length < pageSize || last === undefined) break
      after = last
    }
    return {
      scanned,
      reencrypted,
      current,
      failed: failures.length,
      busy,
      failures,
      kidsInUse: [...kidsInUse].sort()
    }
  })
