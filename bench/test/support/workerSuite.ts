import { type DevIdp, type DevIdpOptions, startDevIdp } from "@token-broker/dev-idp"
import { afterAll, beforeAll } from "vitest"
import type { StoreKind } from "../../src/StoreSpec.js"
import type { SqlStoreSpec } from "../../src/StoreSql.js"
import { prepareBackend } from "./backends.js"
import { type Provisioner, startProvisioner } from "./provisioning.js"
import { killAllWorkers } from "./workers.js"

/**
 * The frame of a cross-process test file: one dev-idp for the file, started in `beforeAll`; in
 * `afterAll` every worker process is killed and dev-idp closed, whatever the tests did. Answers the
 * running dev-idp (for use inside tests and setups).
 */
export const devIdpForWorkers = (options: DevIdpOptions): (() => DevIdp) => {
  let idp: DevIdp | undefined
  beforeAll(async () => {
    idp = await startDevIdp(options)
  })
  afterAll(async () => {
    await killAllWorkers()
    await idp?.close()
  })
  return () => {
    if (idp === undefined) throw new Error("dev-idp is not running (used outside the tests?)")
    return idp
  }
}

/** A fresh, migrated store of `kind` and a provisioner on it, both cleaned up through `defer` (a `suiteSetup`'s). */
export const provisionedStore = async (
  kind: StoreKind,
  idp: DevIdp,
  defer: (cleanup: () => Promise<void>) => void
) => {
  const backend = await prepareBackend(kind)
  defer(backend.cleanup)
  const provisioner = await startProvisioner(idp, backend.spec)
  defer(provisioner.close)
  return { spec: backend.spec, provisioner }
}

/** `provisionedStore` for a test that reads or writes SQL itself: `why` says so when `kind` is not SQL. */
export const provisionedSqlStore = async (
  kind: StoreKind,
  idp: DevIdp,
  defer: (cleanup: () => Promise<void>) => void,
  why: string
): Promise<{ readonly spec: SqlStoreSpec; readonly provisioner: Provisioner }> => {
  const { spec, provisioner } = await provisionedStore(kind, idp, defer)
  if (spec.kind === "vault") throw new Error(why)
  return { spec, provisioner }
}
