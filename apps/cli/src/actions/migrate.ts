/** `token-broker migrate`: the storage's pending schema migrations, applied and reported. */
import { migrateStorage } from "@token-broker/config"
import { Effect } from "effect"
import type { Action, ReportArgs } from "../internal/Action.js"
import { describeStorage, loadCliConfig } from "../internal/Broker.js"
import { fromBrokerError } from "../internal/Failure.js"
import { printJson, printLine } from "../internal/Output.js"

export const migrate: Action<ReportArgs> = (args) =>
  Effect.gen(function* () {
    const config = yield* loadCliConfig(args.path)
    const where = describeStorage(config)
    const result = yield* migrateStorage(config.storage).pipe(Effect.mapError(fromBrokerError))
    if (args.json) return yield* printJson({ storage: where, ...result })
    if (!("applied" in result)) {
      return yield* printLine(`${where}: this store has no schema; nothing to migrate`)
    }
    if (result.applied.length === 0) {
      return yield* printLine(`${where}: schema is current (version ${result.to}); nothing to do`)
    }
    yield* printLine(
      `${where}: migrated schema version ${result.from} -> ${result.to} (applied ${result.applied.join(", ")})`
    )
  })
