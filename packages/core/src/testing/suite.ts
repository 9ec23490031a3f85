import { expect, layer } from "@effect/vitest"
import { Duration, Effect, type Layer } from "effect"
import type { GrantStore, GrantStoreCapabilities } from "../GrantStore.js"
import type { ChildStoreSpec } from "./childProcess.js"
import { suiteCrossProcess } from "./suite/crossProcess.js"
import { suiteLeases } from "./suite/leases.js"
import { suitePaging } from "./suite/paging.js"
import { suitePending } from "./suite/pending.js"
import { suiteRecords } from "./suite/records.js"
import { store } from "./suite/shared.js"

export interface GrantStoreConformanceOptions {
  /**
   * What the store declares (`capabilities` of the built store). Needed before the store is built, to
   * register the tests a store lacks as skipped with the reason; the first test checks that the built
   * store declares exactly these.
   */
  readonly capabilities: GrantStoreCapabilities
  /**
   * How a child process builds the same store (same file, same database and schema), for the tests of
   * leases across processes. Required when `capabilities.crossProcessLeases` is true. The child runs
   * `node --import tsx`, so the package running the suite needs `tsx` among its devDependencies.
   */
  readonly child?: ChildStoreSpec | undefined
  /**
   * Every byte the store holds, as text (e.g. the database file and its WAL, or a dump of the tables).
   * When given, the suite checks that stored secrets (KeyRing envelopes) are kept verbatim.
   */
  readonly rawDump?: (() => Effect.Effect<string, unknown>) | undefined
}

/**
 * Registers the GrantStore conformance suite (vitest, via `@effect/vitest`) against the store built by
 * `makeLayer`. The layer is built once for the suite and the tests share no state (each uses its own
 * random tenant, lease names and state hashes), so the suite can run against one long-lived database.
 *
 * ```ts
 * grantStoreConformance("sqlite", () => SqliteGrantStore.layer({ filename }), {
 *   capabilities: { crossProcessLeases: true, durable: true },
 *   child: { module: "@token-broker/storage-sqlite", export: "layer", options: { filename } }
 * })
 * ```
 */
export const grantStoreConformance = (
  name: string,
  makeLayer: () => Layer.Layer<GrantStore, unknown, never>,
  options: GrantStoreConformanceOptions
): void => {
  const { capabilities } = options
  layer(makeLayer(), { excludeTestServices: true, timeout: Duration.seconds(180) })(
    `GrantStore conformance: ${name}`,
    (it) => {
      it.effect("the store declares the capabilities the suite was given", () =>
        Effect.gen(function* () {
          const driver = yield* store
          expect(driver.capabilities).toEqual(capabilities)
        })
      )

      suiteRecords(it, options, makeLayer)
      suitePaging(it)
      suiteLeases(it)
      suiteCrossProcess(it, options)
      suitePending(it)
    }
  )
}
