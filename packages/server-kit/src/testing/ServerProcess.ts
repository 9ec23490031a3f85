import { type ChildProcess, spawn } from "node:child_process"
import { watch } from "node:fs"
import { readFile } from "node:fs/promises"
import { basename, dirname } from "node:path"

/** A server started as an operator starts it: its own process, its output collected. */
export interface ServerProcess {
  readonly child: ChildProcess
  /** All it printed so far (stdout and stderr). */
  readonly output: () => string
  /** Its exit code once it is gone. */
  readonly exited: Promise<number | null>
}

/** Spawns `command args` with `env` as its whole environment and collects what it prints. */
export const spawnServer = (
  command: string,
  args: ReadonlyArray<string>,
  options: { readonly cwd: string; readonly env: NodeJS.ProcessEnv }
): ServerProcess => {
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: options.env,
    stdio: ["ignore", "pipe", "pipe"]
  })
  let output = ""
  const collect = (chunk: Buffer) => {
    output += chunk.toString()
  }
  child.stdout?.on("data", collect)
  child.stderr?.on("data", collect)
  const exited = new Promise<number | null>((done) => child.once("exit", (code) => done(code)))
  return { child, output: () => output, exited }
}

/**
 * The text of the address file a server on port 0 writes (`--address-file`), once it is there whole
 * (it ends with a newline); rejects with the server's output when the server exits first.
 */
export const addressFileText = (server: ServerProcess, path: string): Promise<string> =>
  new Promise((resolveAddress, reject) => {
    const watcher = watch(dirname(path))
    let settled = false
    const finish = (settle: () => void) => {
      if (settled) return
      settled = true
      watcher.close()
      settle()
    }
    const look = () =>
      readFile(path, "utf8").then(
        (text) => {
          if (text.endsWith("\n")) finish(() => resolveAddress(text))
        },
        () => undefined
      )
    watcher.on("change", (_event, name) => {
      if (name === basename(path)) void look()
    })
    void server.exited.then((code) =>
      finish(() => reject(new Error(`the server exited (${code}) before it listened:\n${server.output()}`)))
    )
    // it may have appeared before the watch began
    void look()
  })
