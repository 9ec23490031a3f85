import { Effect } from "effect"

/**
 * Loads a command's implementation on demand. Implementations import the storage drivers, openid-client
 * and the broker; loading them only when their command runs keeps `--help` fast.
 */
export const lazy = <M>(load: () => Promise<M>): Effect.Effect<M> => Effect.promise(load)
