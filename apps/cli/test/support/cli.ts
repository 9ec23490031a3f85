import { type ChildProcess, spawn } from "node:child_process"
import { fileURLToPath } from "node:url"

/** The built CLI (the package's test script builds it first). */
export const BIN = fileURLToPath(new URL("../../dist/bin.js", import.meta.url))

export interface CliResult {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

export interface CliOptions {
  readonly env?: Readonly<Record<string, string>> | undefined
  readonly cwd?: string | undefined
  readonly input?: string | undefined
  /** Another entry point of the built CLI than dist/bin.js. */
  readonly bin?: string | undefined
}

/** A clean environment: nothing of the test runner's leaks into the CLI except what a user would have. */
export const baseEnv = (extra: Readonly<Record<string, string>> = {}): Record<string, string> => ({
  PATH: process.env.PATH ?? "/usr/bin:/bin",
  HOME: process.env.HOME ?? "/tmp",
  ...extra
})

export const spawnCli = (args: ReadonlyArray<string>, options: CliOptions = {}): ChildProcess =>
  spawn(process.execPath, [options.bin ?? BIN, ...args], {
    cwd: options.cwd,
    env: baseEnv(options.env),
    stdio: ["pipe", "pipe", "pipe"]
  })

/** Everything a child has written to stdout and stderr so far, read when asked. */
export const collectOutput = (child: ChildProcess): { readonly stdout: string; readonly stderr: string } => {
  const output = { stdout: "", stderr: "" }
  child.stdout?.on("data", (chunk: Buffer) => {
    output.stdout += chunk.toString()
  })
  child.stderr?.on("data", (chunk: Buffer) => {
    output.stderr += chunk.toString()
  })
  return output
}

/** Runs the CLI as a subprocess to its end. */
export const runCli = (args: ReadonlyArray<string>, options: CliOptions = {}): Promise<CliResult> =>
  new Promise((resolve, reject) => {
    const child = spawnCli(args, options)
    const output = collectOutput(child)
    child.on("error", reject)
    child.on("close", (code) => resolve({ code, ...output }))
    child.stdin?.end(options.input ?? "")
  })

/** Waits until `stream` has printed a line matching `pattern`; answers the match. */
export const waitForLine = (
  child: ChildProcess,
  stream: "stdout" | "stderr",
  pattern: RegExp,
  timeoutMs = 180_000
): Promise<RegExpExecArray> =>
  new Promise((resolve, reject) => {
    let seen = ""
    const timer = setTimeout(
      () => reject(new Error(`timed out waiting for ${pattern} in:\n${seen}`)),
      timeoutMs
    )
    const onData = (chunk: Buffer) => {
      seen += chunk.toString()
      const match = pattern.exec(seen)
      if (match !== null) {
        clearTimeout(timer)
        child[stream]?.off("data", onData)
        resolve(match)
      }
    }
    child[stream]?.on("data", onData)
    child.on("close", () => {
      clearTimeout(timer)
      reject(new Error(`the CLI ended before printing ${pattern}:\n${seen}`))
    })
  })

export const exitOf = (
  child: ChildProcess
): Promise<{ code: number | null; signal: NodeJS.Signals | null }> =>
  new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      resolve({ code: child.exitCode, signal: child.signalCode })
      return
    }
    child.on("close", (code, signal) => resolve({ code, signal }))
  })
