import { Command } from "@effect/cli"
import { Effect, type Option } from "effect"
import type { Action, ReportArgs } from "./Action.js"
import { configPath } from "./ConfigPath.js"
import type { CliEnvironment } from "./Environment.js"
import { lazy } from "./Lazy.js"
import * as Shared from "./Options.js"

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

/** A command that takes only `--config` and `--json` and hands both to its action (doctor, migrate, keys list). */
export const reportCommand = (name: string, description: string, load: () => Promise<Action<ReportArgs>>) =>
  Command.make(
    name,
    { config: Shared.config, json: Shared.json },
    withAction(load, (action, path, args) => action({ path, json: args.json }))
  ).pipe(Command.withDescription(description))
