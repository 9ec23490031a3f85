import {
  type Config,
  describeKeyRingReload,
  type Env,
  type FollowedKeyRing,
  type FollowKeyRingOptions,
  followKeyRing,
  loadConfig
} from "@token-broker/config"
import { Cause, Effect, Exit } from "effect"
import type { Logger as PinoLogger } from "pino"

/**
 * What both servers' entry points (`main.ts`) do around starting, for entry points only (they exit the
 * process): load the config, start, follow the config file's key ring. Every message starts with the
 * app's name (`broker`, `mcp-server`).
 */

/** The config at `path`; when it does not load, says which field and why, and exits 2. */
export const loadConfigOrExit = async (app: string, path: string, env: Env): Promise<Config> => {
  const loaded = await Effect.runPromiseExit(loadConfig({ path, env }))
  if (Exit.isSuccess(loaded)) return loaded.value
  const error = Cause.squash(loaded.cause) as { field?: string; message?: string }
  console.error(`${app}: invalid configuration (${error.field ?? "?"}): ${error.message ?? String(error)}`)
  return process.exit(2)
}

/** The started server; when starting fails, says why (the error's tag and field), and exits 1. */
export const startedOrExit = <A>(app: string, starting: Promise<A>): Promise<A> =>
  starting.catch((error: unknown) => {
    const e = error as { _tag?: string; field?: string; message?: string }
    const what = e._tag === undefined ? "" : ` (${e._tag}${e.field === undefined ? "" : ` ${e.field}`})`
    console.error(`${app}: cannot start${what}: ${e.message ?? String(error)}`)
    return process.exit(1)
  })

/**
 * Follows the key ring in the config file (`followKeyRing`), logging each reload at the level it deserves
 * and each change of the file that does not load (the ring keeps its keys).
 */
export const followKeyRingLogged = (
  options: Omit<FollowKeyRingOptions, "onReload" | "onError"> & { readonly logger: PinoLogger }
): FollowedKeyRing => {
  const { logger, ...follow } = options
  return followKeyRing({
    ...follow,
    onReload: (outcome) => {
      const { level, fields, message } = describeKeyRingReload(outcome)
      logger[level](fields, message)
    },
    onError: (error) =>
      logger.error(
        { field: error.field },
        `the config file changed but does not load (${error.message}); the key ring keeps the keys it had`
      )
  })
}
