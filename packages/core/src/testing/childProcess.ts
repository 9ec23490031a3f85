import { type ChildProcess, spawn } from "node:child_process"
import { createRequire } from "node:module"
import { isAbsolute, join } from "node:path"
import { createInterface } from "node:readline"
import { fileURLToPath, pathToFileURL } from "node:url"
import { Data, Deferred, Duration, Effect, type Scope } from "effect"
import type { ChildCommand, ChildMessage } from "./protocol.js"

/** How a child process builds the same store as the test process. */
export interface ChildStoreSpec {
  /**
   * The module the child imports: an absolute path, a `file:` URL, or a package name resolved from the
   * working directory of the test run (e.g. the adapter's own name).
   */
  readonly module: string
  /**
   * The export of that module called with `options` to build the layer; a dotted path reaches into a
   * namespace export (`"SqliteGrantStore.layer"`). Default `"layer"`.
   */
  readonly export?: string | undefined
  /** The argument of that export; must survive `JSON.stringify`. */
  readonly options?: unknown
}

export class ChildFailed extends Data.TaggedError("ChildFailed")<{ readonly message: string }> {}

export interface ChildStore {
  readonly pid: number
  readonly call: (command: ChildCommand) => Effect.Effect<unknown, ChildFailed>
  /** Kills the process with SIGKILL and waits until it is gone. */
  readonly kill: Effect.Effect<void>
}

const resolveModule = (module: string): string => {
  if (module.startsWith("file:")) return module
  if (isAbsolute(module)) return pathToFileURL(module).href
  return pathToFileURL(createRequire(join(process.cwd(), "package.json")).resolve(module)).href
}

const childEntry = (): string => {
  const here = fileURLToPath(import.meta.url)
  return join(here, "..", here.endsWith(".ts") ? "child.ts" : "child.js")
}

/**
 * `tsx` runs the child's TypeScript; it is an optional peer dependency of core, needed by the suite's
 * child-process tests only. Resolved from the working directory, as `node --import tsx` resolves it.
 */
const requireTsx = (): Effect.Effect<void, ChildFailed> =>
  Effect.try({
    try: () => {
      createRequire(join(process.cwd(), "package.json")).resolve("tsx")
    },
    catch: () =>
      new ChildFailed({
        message: `the child-process tests of grantStoreConformance run \`node --import tsx\`, and tsx is not installed in ${process.cwd()}: add it as a dev dependency (pnpm add -D tsx)`
      })
  })

/** Spawns `node --import tsx child.ts` building the store of `spec`; killed when the scope closes. */
export const spawnChildStore = (spec: ChildStoreSpec): Effect.Effect<ChildStore, ChildFailed, Scope.Scope> =>
  Effect.gen(function* () {
    yield* requireTsx()
    const ready = yield* Deferred.make<void, ChildFailed>()
    const exited = yield* Deferred.make<void>()
    const waiting = new Map<number, (message: ChildMessage) => void>()
    let stderr = ""
    let nextId = 0

    const child: ChildProcess = yield* Effect.acquireRelease(
      Effect.sync(() =>
        spawn(
          process.execPath,
          [
            "--import",
            "tsx",
            childEntry(),
            resolveModule(spec.module),
            spec.export ?? "layer",
            JSON.stringify(spec.options ?? null)
          ],
          { cwd: process.cwd(), stdio: ["pipe", "pipe", "pipe"] }
        )
      ),
      (child) =>
        Effect.suspend(() => {
          if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
          return Deferred.await(exited)
        })
    )
    const failAll = (why: string) => {
      const failure = new ChildFailed({ message: `${why}${stderr === "" ? "" : `\n${stderr.slice(-4000)}`}` })
      Deferred.unsafeDone(ready, Effect.fail(failure))
      for (const resolve of waiting.values()) resolve({ id: -1, error: failure.message })
      waiting.clear()
    }
    child.stderr?.on("data", (chunk: Buffer) => {
      stderr += chunk.toString("utf8")
    })
    child.on("exit", (code, signal) => {
      failAll(`child store process ${child.pid} exited (code ${code}, signal ${signal})`)
      Deferred.unsafeDone(exited, Effect.void)
    })
    child.on("error", (error) => failAll(`child store process failed to start: ${error.message}`))
    if (child.stdout !== null) {
      createInterface({ input: child.stdout }).on("line", (line) => {
        let message: ChildMessage
        try {
          message = JSON.parse(line) as ChildMessage
        } catch {
          stderr += `${line}\n`
          return
        }
        if ("ready" in message) Deferred.unsafeDone(ready, Effect.void)
        else if ("fatal" in message) failAll(message.fatal)
        else {
          waiting.get(message.id)?.(message)
          waiting.delete(message.id)
        }
      })
    }
    yield* Deferred.await(ready).pipe(
      Effect.timeoutFail({
        duration: Duration.seconds(30),
        onTimeout: () => new ChildFailed({ message: `child store process did not start in 30 s\n${stderr}` })
      })
    )

    const call = (command: ChildCommand): Effect.Effect<unknown, ChildFailed> =>
      Effect.async<unknown, ChildFailed>((resume) => {
        const id = nextId++
        waiting.set(id, (message) =>
          resume(
            "error" in message
              ? Effect.fail(new ChildFailed({ message: `child ${command.op} failed: ${message.error}` }))
              : Effect.succeed("value" in message ? message.value : null)
          )
        )
        child.stdin?.write(`${JSON.stringify({ id, command })}\n`)
      })

    return {
      pid: child.pid ?? -1,
      call,
      kill: Effect.suspend(() => {
        child.kill("SIGKILL")
        return Deferred.await(exited)
      })
    }
  })
