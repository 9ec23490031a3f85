import { type ChildProcess, spawn } from "node:child_process"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import type { FromWorker, ToWorker, WorkerInit, WorkerOp } from "./workerProtocol.js"

const here = dirname(fileURLToPath(import.meta.url))
const WORKER_ENTRY = join(here, "brokerWorker.ts")
/** The bench package: `--import tsx` is resolved from here. */
const PACKAGE_DIR = join(here, "..", "..")

export interface Worker {
  readonly pid: number
  readonly instanceId: string
  /** Sends one request; settles with the worker's answer, or rejects when the worker dies first. */
  readonly request: <A>(op: WorkerOp) => Promise<A>
  /** SIGKILL, then waits until the process is gone. */
  readonly kill: () => Promise<void>
  readonly exited: Promise<{ readonly code: number | null; readonly signal: NodeJS.Signals | null }>
}

/** Every worker not yet known to be gone: `killAllWorkers` ends them, whatever the tests did. */
const live = new Set<ChildProcess>()

const STARTUP_TIMEOUT_MS = 180_000

/** Spawns `node --import tsx brokerWorker.ts`, sends `init` over IPC and waits for `ready`. */
export const startWorker = (init: WorkerInit): Promise<Worker> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", WORKER_ENTRY], {
      cwd: PACKAGE_DIR,
      stdio: ["ignore", "pipe", "pipe", "ipc"],
      serialization: "json"
    })
    live.add(child)
    let output = ""
    const tail = () => (output === "" ? "" : `\n--- worker output ---\n${output.slice(-4000)}`)
    child.stdout?.on("data", (chunk: Buffer) => {
      output += chunk.toString("utf8")
    })
    child.stderr?.on("data", (chunk: Buffer) => {
      output += chunk.toString("utf8")
    })
    const pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>()
    let nextId = 0
    let ready = false
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) => {
      child.on("exit", (code, signal) => {
        live.delete(child)
        const why = `worker ${child.pid} (${init.broker.instanceId}) exited (code ${code}, signal ${signal})`
        if (!ready) reject(new Error(`${why} before it was ready${tail()}`))
        for (const waiter of pending.values()) waiter.reject(new Error(`${why}${tail()}`))
        pending.clear()
        done({ code, signal })
      })
    })
    child.on("error", (error) => reject(new Error(`worker failed to start: ${error.message}`)))
    const timer = setTimeout(() => {
      if (!ready) {
        child.kill("SIGKILL")
        reject(new Error(`worker did not get ready in ${STARTUP_TIMEOUT_MS / 1000} s${tail()}`))
      }
    }, STARTUP_TIMEOUT_MS)
    child.on("message", (message: FromWorker) => {
      switch (message.type) {
        case "ready":
          ready = true
          clearTimeout(timer)
          resolve(worker)
          return
        case "fatal":
          output += `${message.message}\n`
          return
        case "response":
          pending.get(message.id)?.resolve(message.value)
          pending.delete(message.id)
          return
      }
    })
    const post = (message: ToWorker) => child.send(message)
    const kill = async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
      await exited
    }
    const worker: Worker = {
      pid: child.pid ?? -1,
      instanceId: init.broker.instanceId,
      request: <A>(op: WorkerOp) =>
        new Promise<A>((resolveRequest, rejectRequest) => {
          const id = nextId++
          pending.set(id, { resolve: (value) => resolveRequest(value as A), reject: rejectRequest })
          post({ type: "request", id, op })
        }),
      kill,
      exited
    }
    post({ type: "init", init })
  })

/** SIGKILLs every worker still running and waits for them; for `afterAll`, whatever happened. */
export const killAllWorkers = async (): Promise<void> => {
  const children = [...live]
  await Promise.all(
    children.map(
      (child) =>
        new Promise<void>((done) => {
          if (child.exitCode !== null || child.signalCode !== null) return done()
          child.once("exit", () => done())
          child.kill("SIGKILL")
        })
    )
  )
}
