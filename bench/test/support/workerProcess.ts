import { type ChildProcess, spawn } from "node:child_process"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

/** The bench package: `--import tsx` is resolved from here. */
const PACKAGE_DIR = join(dirname(fileURLToPath(import.meta.url)), "..", "..")

/** What every worker sends: `ready` after `init`, `fatal` before it dies, `response` to a `request`. */
type BaseFromWorker =
  | { readonly type: "ready" }
  | { readonly type: "fatal"; readonly message: string }
  | { readonly type: "response"; readonly id: number; readonly value: unknown }

export interface WorkerProcess<Op> {
  readonly pid: number
  /** Sends one request; settles with the worker's answer, or rejects when the worker dies first. */
  readonly request: <A>(op: Op) => Promise<A>
  /** Sends any other message (while the worker is connected). */
  readonly post: (message: unknown) => void
  readonly signal: (signal: NodeJS.Signals) => void
  /** SIGKILL (also of a stopped process), then waits until it is gone. */
  readonly kill: () => Promise<void>
  readonly exited: Promise<{ readonly code: number | null; readonly signal: NodeJS.Signals | null }>
  /** All it printed (stdout and stderr). */
  readonly output: () => string
}

export interface SpawnOptions<From> {
  /** The worker's module, run as `node --import tsx <entry>` with an IPC channel. */
  readonly entry: string
  readonly init: unknown
  /** How errors name it (`worker`, `chaos worker`) and its instance id. */
  readonly label: string
  readonly instanceId: string
  readonly startupTimeoutMs: number
  /** The worker's own messages (beyond ready/fatal/response), and every response before it settles. */
  readonly onMessage?: (message: From) => void
  /** A worker killed with SIGKILL on purpose: its pending requests fail without its output. */
  readonly quietOnKill?: boolean
}

/** Every worker not yet known to be gone: `killAllWorkerProcesses` ends them, whatever the run did. */
const live = new Set<ChildProcess>()
const outputs: Array<() => string> = []

/** Every worker's output so far (for a secrets scan at the end of a run). */
export const allWorkerProcessOutput = (): string => outputs.map((read) => read()).join("\n")

/**
 * The one way a bench worker process starts, for the reliability tests and the chaos suite alike:
 * spawns it, sends `init` over IPC and resolves once it answers `ready`.
 */
export const spawnWorkerProcess = <Op, From extends { readonly type: string }>(
  options: SpawnOptions<From>
): Promise<WorkerProcess<Op>> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", options.entry], {
      cwd: PACKAGE_DIR,
      stdio: ["ignore", "pipe", "pipe", "ipc"],
      serialization: "json"
    })
    live.add(child)
    let output = ""
    outputs.push(() => output)
    const tail = () => (output === "" ? "" : `\n--- worker output ---\n${output.slice(-4000)}`)
    const collect = (chunk: Buffer) => {
      output += chunk.toString("utf8")
    }
    child.stdout?.on("data", collect)
    child.stderr?.on("data", collect)
    const pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>()
    let nextId = 0
    let ready = false
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) => {
      child.on("exit", (code, signal) => {
        live.delete(child)
        const why = `${options.label} ${child.pid} (${options.instanceId}) exited (code ${code}, signal ${signal})`
        if (!ready) reject(new Error(`${why} before it was ready${tail()}`))
        const quiet = options.quietOnKill === true && signal === "SIGKILL"
        for (const waiter of pending.values()) waiter.reject(new Error(quiet ? why : `${why}${tail()}`))
        pending.clear()
        done({ code, signal })
      })
    })
    child.on("error", (error) => reject(new Error(`${options.label} failed to start: ${error.message}`)))
    const timer = setTimeout(() => {
      if (!ready) {
        child.kill("SIGKILL")
        reject(
          new Error(`${options.label} did not get ready in ${options.startupTimeoutMs / 1000} s${tail()}`)
        )
      }
    }, options.startupTimeoutMs)
    const post = (message: unknown) => {
      if (child.connected) child.send(message as object)
    }
    child.on("message", (message: From) => {
      const base = message as unknown as BaseFromWorker
      switch (base.type) {
        case "ready":
          ready = true
          clearTimeout(timer)
          resolve(worker)
          return
        case "fatal":
          output += `${base.message}\n`
          return
        case "response":
          options.onMessage?.(message)
          pending.get(base.id)?.resolve(base.value)
          pending.delete(base.id)
          return
        default:
          options.onMessage?.(message)
      }
    })
    const worker: WorkerProcess<Op> = {
      pid: child.pid ?? -1,
      request: <A>(op: Op) =>
        new Promise<A>((resolveRequest, rejectRequest) => {
          if (!child.connected) {
            rejectRequest(new Error(`${options.label} ${child.pid} (${options.instanceId}) is gone`))
            return
          }
          const id = nextId++
          pending.set(id, { resolve: (value) => resolveRequest(value as A), reject: rejectRequest })
          post({ type: "request", id, op })
        }),
      post,
      signal: (signal) => {
        if (child.exitCode === null && child.signalCode === null) child.kill(signal)
      },
      kill: async () => {
        if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
        await exited
      },
      exited,
      output: () => output
    }
    post({ type: "init", init: options.init })
  })

/** SIGKILLs every worker still running (stopped ones too) and waits for them; for `afterAll`. */
export const killAllWorkerProcesses = async (): Promise<void> => {
  await Promise.all(
    [...live].map(
      (child) =>
        new Promise<void>((done) => {
          if (child.exitCode !== null || child.signalCode !== null) return done()
          child.once("exit", () => done())
          child.kill("SIGKILL")
        })
    )
  )
}
