import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { killAllWorkerProcesses, spawnWorkerProcess } from "./workerProcess.js"
import type { FromWorker, WorkerInit, WorkerOp } from "./workerProtocol.js"

const WORKER_ENTRY = join(dirname(fileURLToPath(import.meta.url)), "brokerWorker.ts")

export interface Worker {
  readonly pid: number
  readonly instanceId: string
  /** Sends one request; settles with the worker's answer, or rejects when the worker dies first. */
  readonly request: <A>(op: WorkerOp) => Promise<A>
  /** SIGKILL, then waits until the process is gone. */
  readonly kill: () => Promise<void>
  readonly exited: Promise<{ readonly code: number | null; readonly signal: NodeJS.Signals | null }>
}

const STARTUP_TIMEOUT_MS = 180_000

/** Spawns `node --import tsx brokerWorker.ts`, sends `init` over IPC and waits for `ready`. */
export const startWorker = async (init: WorkerInit): Promise<Worker> => {
  const worker = await spawnWorkerProcess<WorkerOp, FromWorker>({
    entry: WORKER_ENTRY,
    init,
    label: "worker",
    instanceId: init.broker.instanceId,
    startupTimeoutMs: STARTUP_TIMEOUT_MS
  })
  return {
    pid: worker.pid,
    instanceId: init.broker.instanceId,
    request: worker.request,
    kill: worker.kill,
    exited: worker.exited
  }
}

/** SIGKILLs every worker still running and waits for them; for `afterAll`, whatever happened. */
export const killAllWorkers = killAllWorkerProcesses
