import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { formatFindings, type KnownSecret, SecretList, scanForSecrets } from "@token-broker/secret-scan"
import type { Provisioner } from "../test/support/provisioning.js"
import {
  allWorkerProcessOutput,
  killAllWorkerProcesses,
  spawnWorkerProcess
} from "../test/support/workerProcess.js"
import type {
  FromWorker,
  RefreshStep,
  ServedToken,
  ToWorker,
  WorkerInit,
  WorkerOp
} from "../test/support/workerProtocol.js"
import { type ScenarioRow, say } from "./report.js"

const WORKER_ENTRY = join(dirname(fileURLToPath(import.meta.url)), "..", "test", "support", "brokerWorker.ts")
const STARTUP_TIMEOUT_MS = 60_000

export interface ChaosWorker {
  readonly pid: number
  readonly request: <A>(op: WorkerOp) => Promise<A>
  /** Lets a worker stopped at its `stopAt` step go on. */
  readonly resume: () => void
  readonly signal: (signal: NodeJS.Signals) => void
  /** SIGKILL (also of a stopped process), then waits until it is gone. */
  readonly kill: () => Promise<void>
  /** All it printed (stdout and stderr): the suite scans it for secrets. */
  readonly output: () => string
}

export interface WorkerEvents {
  readonly onStep?: (step: RefreshStep, subject: string) => void
  readonly onToken?: (token: ServedToken) => void
}

/**
 * Every secret the run's workers and provisioners handled, for the secret scan of the workers' output:
 * each worker's client secret and keys, every access token a worker reported, and what each
 * provisioner collected (consents' passwords, PKCE verifiers, nonces, codes and states, and the stored
 * refresh and access tokens it decrypted as it was retired).
 */
export const chaosSecrets = new SecretList()

const rememberServed = (value: unknown) => {
  if (typeof value !== "object" || value === null) return
  const token = (value as { accessToken?: unknown }).accessToken
  if (typeof token === "string" && token.length > 0)
    chaosSecrets.add("access token served by a worker", token)
}

/**
 * The last row of the chaos table: no secret of the run, in any form the secret scan knows (raw, URL- and
 * form-encoded, base64, base64url, hex, 12-character pieces), and no credential pattern (Bearer, Basic,
 * `refresh_token=`, `client_secret=`, a JWT) in anything the workers printed.
 */
export const secretScanRow = (printed: string, secrets: Iterable<KnownSecret>): ScenarioRow => {
  const list = [...secrets]
  const findings = scanForSecrets(printed, list)
  return {
    scenario: "no secret in any broker process's output",
    backend: "-",
    runs: 1,
    lost: 0,
    unavoidable: 0,
    wrongTokens: 0,
    ok: findings.length === 0,
    outcome:
      findings.length === 0
        ? `${printed.length} characters scanned for ${list.length} secrets and the credential patterns`
        : formatFindings(findings)
  }
}

/**
 * Closes a provisioner after adding its secrets to `chaosSecrets`, with every grant's stored tokens as
 * they are now. A store it can no longer read (a scenario broke it on purpose) is said, not hidden.
 */
export const retireProvisioner = async (provisioner: Provisioner, scenario: string): Promise<void> => {
  await provisioner.rememberStored().catch((error: unknown) => {
    say(scenario, `the stored grants could not be read for the secret scan: ${String(error)}`)
  })
  chaosSecrets.addAll(provisioner.secrets)
  await provisioner.close()
}

/**
 * Spawns the bench's broker worker (`test/support/brokerWorker.ts`) with `revealTokens` (the suite checks
 * every served token), sends `init` over IPC and waits for `ready`.
 */
export const startChaosWorker = (init: WorkerInit, events: WorkerEvents = {}): Promise<ChaosWorker> =>
  new Promise((resolve, reject) => {
    chaosSecrets.add(`client secret of ${init.provider.clientId}`, init.provider.clientSecret)
    for (const key of init.keys) {
      chaosSecrets
        .add(`key ${key.kid}`, key.material)
        .add(`key ${key.kid} (bytes)`, Buffer.from(key.material, "base64"))
    }
    spawnWorkerProcess<WorkerOp, FromWorker>({
      entry: WORKER_ENTRY,
      init: { ...init, revealTokens: true } satisfies WorkerInit,
      label: "chaos worker",
      instanceId: init.broker.instanceId,
      startupTimeoutMs: STARTUP_TIMEOUT_MS,
      quietOnKill: true,
      onMessage: (message) => {
        switch (message.type) {
          case "response":
            rememberServed(message.value)
            return
          case "step":
            events.onStep?.(message.step, message.subject)
            return
          case "token":
            rememberServed(message)
            events.onToken?.(message)
            return
        }
      }
    }).then(
      (worker) =>
        resolve({
          pid: worker.pid,
          request: worker.request,
          resume: () => worker.post({ type: "continue" } satisfies ToWorker),
          signal: worker.signal,
          kill: worker.kill,
          output: worker.output
        }),
      reject
    )
  })

/** SIGKILLs every chaos worker still running (stopped ones too) and waits for them. */
export const killAllChaosWorkers = killAllWorkerProcesses

/** Every worker's output so far (for the secrets scan at the end of a run). */
export const allWorkerOutput = allWorkerProcessOutput

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

export const waitUntil = async (condition: () => boolean, timeoutMs: number, what: string) => {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}`)
    await sleep(10)
  }
}
