import { type FSWatcher, watch } from "node:fs"
import { basename, dirname, resolve } from "node:path"
import { type ConfigInvalid, KeyRing } from "@token-broker/core"
import { Effect } from "effect"
import { type KeyRingConfig, loadConfig } from "./Config.js"

/** What a reload of the key ring did. */
export type KeyRingReload =
  | {
      readonly _tag: "Reloaded"
      readonly previousKid: string
      readonly currentKid: string
      /** Every key id the ring now holds. */
      readonly kids: ReadonlyArray<string>
    }
  /** The running ring is not a local one (Vault Transit follows its key's latest version by itself). */
  | { readonly _tag: "NotLocal"; readonly currentKid: string }

/**
 * Swaps the running local key ring for the config's key list, so a broker writes under the key that
 * `token-broker keys rotate` made current without a restart. A ring of another kind is left as it is.
 */
export const reloadKeyRing = (
  keyRing: KeyRingConfig
): Effect.Effect<KeyRingReload, ConfigInvalid, KeyRing.KeyRing> =>
  Effect.gen(function* () {
    const ring = yield* KeyRing.KeyRing
    const previousKid = ring.currentKid
    if (keyRing.kind !== "local" || !KeyRing.isReloadable(ring))
      return { _tag: "NotLocal", currentKid: previousKid }
    const currentKid = yield* ring.reload({ keys: keyRing.keys, current: keyRing.current })
    return { _tag: "Reloaded", previousKid, currentKid, kids: keyRing.keys.map((k) => k.kid) }
  })

export interface FollowKeyRingOptions {
  /** The config file the process was started with. */
  readonly path: string
  readonly env: Readonly<Record<string, string | undefined>>
  /** Runs an effect on the process's runtime (the one that holds the KeyRing). */
  readonly run: <A, E>(effect: Effect.Effect<A, E, KeyRing.KeyRing>) => Promise<A>
  readonly onReload: (outcome: KeyRingReload) => void
  /** A config that no longer loads, or a key list the ring refuses: the ring keeps the keys it had. */
  readonly onError: (error: ConfigInvalid) => void
}

export interface FollowedKeyRing {
  /** Reloads now (e.g. on SIGHUP); resolves when this reload and any that was asked meanwhile are done. */
  readonly reload: () => Promise<void>
  readonly close: () => void
}

/**
 * Reloads the key ring whenever the config file changes (written in place, or replaced by a rename as
 * `token-broker keys add/rotate/retire` and most editors do) and whenever `reload` is called. Reloads
 * never overlap: changes that arrive during one are folded into one more reload after it.
 */
export const followKeyRing = (options: FollowKeyRingOptions): FollowedKeyRing => {
  const path = resolve(options.path)
  const name = basename(path)
  let running: Promise<void> | undefined
  let again = false
  const once = async (): Promise<void> => {
    const loaded = await Effect.runPromise(Effect.either(loadConfig({ path, env: options.env })))
    if (loaded._tag === "Left") return options.onError(loaded.left)
    const outcome = await options.run(Effect.either(reloadKeyRing(loaded.right.keyRing)))
    if (outcome._tag === "Left") options.onError(outcome.left)
    else options.onReload(outcome.right)
  }
  const reload = (): Promise<void> => {
    if (running !== undefined) {
      again = true
      return running
    }
    running = (async () => {
      try {
        do {
          again = false
          await once()
        } while (again)
      } finally {
        running = undefined
      }
    })()
    return running
  }
  let watcher: FSWatcher | undefined = watch(dirname(path), (_event, changed) => {
    if (changed === name) void reload()
  })
  watcher.on("error", () => undefined)
  return {
    reload,
    close: () => {
      watcher?.close()
      watcher = undefined
    }
  }
}

/** One log line for a reload: what changed, at the level it deserves (never key material). */
export const describeKeyRingReload = (
  outcome: KeyRingReload
): {
  readonly level: "info" | "debug" | "warn"
  readonly fields: Record<string, unknown>
  readonly message: string
} =>
  outcome._tag === "NotLocal"
    ? {
        level: "warn",
        fields: { currentKid: outcome.currentKid },
        message:
          "the config file changed; the running key ring is not local and was left as it is (restart to apply keyRing changes)"
      }
    : outcome.previousKid !== outcome.currentKid
      ? {
          level: "info",
          fields: { previousKid: outcome.previousKid, currentKid: outcome.currentKid, kids: outcome.kids },
          message: `key ring reloaded: new secrets are encrypted under ${outcome.currentKid}`
        }
      : {
          level: "debug",
          fields: { currentKid: outcome.currentKid, kids: outcome.kids },
          message: "key ring reloaded: the current key is unchanged"
        }
