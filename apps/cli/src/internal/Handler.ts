import { Effect, type Option } from "effect"
import { configPath } from "./ConfigPath.js"
import type { CliEnvironment } from "./Environment.js"
import { lazy } from "./Lazy.js"

/**
 * The handler of every command that reads a config: resolve the config file (`--config`, else the
 * environment's default), load the command's implementation on demand, then run it. `load` stays a literal
 * `() => import("../actions/<name>.js")` in each command file so the bundler keeps that chunk apart.
 */
export const withAction =
  <M, A extends { readonly config: Option.Option<string> }, E, R>(
    load: () => Promise<M>,
    run: (action: M, path: string, args: A) => Effect.Effect<void, E, R>
  ) =>
  (args: A): Effect.Effect<void, E, R | CliEnvironment> =>
    Effect.flatMap(configPath(args.config), (path) =>
      Effect.flatMap(lazy(load), (action) => run(action, path, args))
    )
