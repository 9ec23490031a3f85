import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import type { DevIdp } from "@token-broker/dev-idp"
import { formatFindings, type KnownSecret, SecretList, scanForSecrets } from "@token-broker/secret-scan"
import type { Provisioner } from "../test/support/provisioning.js"
import {
  allWorkerProcessOutput,
  killAllWorkerProcesses,
  spawnWorkerProcess
} from "../test/support/workerProcess.js"
import type { ChaosInit, ChaosOp, FromChaosWorker, RefreshStep, ToChaosWorker } from "./protocol.js"
import { type ScenarioRow, say } from "./report.js"

const here = dirname(fileURLToPath(import.meta.url))
const WORKER_ENTRY = join(here, "worker.ts")
const STARTUP_TIMEOUT_MS = 60_000

export interface ChaosWorker {
  readonly pid: number
  readonly request: <A>(op: ChaosOp) => Promise<A>
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
  readonly onToken?: (token: {
    subject: string
    accessToken: string
    servedAt: number
    expiresAt: number
    source: string
    grantStatus: string
  }) => void
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

/** Spawns `node --import tsx worker.ts`, sends `init` over IPC and waits for `ready`. */
export const startChaosWorker = (init: ChaosInit, events: WorkerEvents = {}): Promise<ChaosWorker> =>
  new Promise((resolve, reject) => {
    chaosSecrets.add(`client secret of ${init.base.provider.clientId}`, init.base.provider.clientSecret)
    for (const key of init.base.keys) {
      chaosSecrets
        .add(`key ${key.kid}`, key.material)
        .add(`key ${key.kid} (bytes)`, Buffer.from(key.material, "base64"))
    }
    spawnWorkerProcess<ChaosOp, FromChaosWorker>({
      entry: WORKER_ENTRY,
      init,
      label: "chaos worker",
      instanceId: init.base.broker.instanceId,
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
          resume: () => worker.post({ type: "continue" } satisfies ToChaosWorker),
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

/** The claims of a JWT, decoded without verification (the notes API verifies). */
const claimsOf = (token: string): Record<string, unknown> | undefined => {
  const payload = token.split(".")[1]
  if (payload === undefined) return undefined
  try {
    return JSON.parse(Buffer.from(payload, "base64url").toString("utf8")) as Record<string, unknown>
  } catch {
    return undefined
  }
}

/**
 * Why a served token is wrong, or undefined when it is right: it must be a JWT from dev-idp for this
 * subject (`sub`), the notes API (`aud`), with the grant's scopes, unexpired when it was served, and the
 * notes API must accept it (checked when it still has half a second to live; JWT access tokens are
 * self-contained, so "accepted" means genuine, unexpired and for the right audience).
 */
export const wrongTokenReason = async (
  idp: DevIdp,
  subject: string,
  token: string,
  servedAt: number,
  alreadyAccepted = false
): Promise<string | undefined> => {
  const claims = claimsOf(token)
  if (claims === undefined) return "not a JWT"
  if (claims.iss !== idp.issuer) return `iss ${String(claims.iss)}`
  if (claims.sub !== subject) return `sub ${String(claims.sub)} for subject ${subject}`
  const aud = Array.isArray(claims.aud) ? claims.aud : [claims.aud]
  if (!aud.includes(idp.notesAudience)) return `aud ${JSON.stringify(claims.aud)}`
  const scopes = typeof claims.scope === "string" ? claims.scope.split(" ") : []
  for (const scope of ["notes:read", "notes:write"])
    if (!scopes.includes(scope)) return `scope ${claims.scope}`
  const exp = typeof claims.exp === "number" ? claims.exp * 1000 : 0
  if (exp <= servedAt) return `expired ${servedAt - exp} ms before it was served`
  if (!alreadyAccepted && exp - Date.now() > 500) {
    const response = await fetch(`${idp.notesApiUrl}/notes`, {
      headers: { authorization: `Bearer ${token}` }
    })
    await response.arrayBuffer()
    if (response.status !== 200) return `the notes API answered ${response.status}`
  }
  return undefined
}

/**
 * Checks tokens as they arrive (a load run streams them) and counts the wrong ones. Checks run one at
 * a time in the background; `settle` waits for those still queued.
 */
export const tokenChecker = (idp: DevIdp) => {
  let checked = 0
  const wrong: Array<string> = []
  const accepted = new Set<string>()
  let chain: Promise<void> = Promise.resolve()
  return {
    /**
     * Checks one serve: the token's claims and its expiry at `servedAt` every time; the notes API is
     * asked once per token. With `grant`, a token the broker took from the store or a refresh while the
     * grant read anything but active is wrong (a cached one may outlive a mark made by another process).
     */
    check: (
      subject: string,
      token: string,
      servedAt: number,
      grant?: { readonly source: string; readonly status: string }
    ) => {
      chain = chain.then(async () => {
        const reason = await wrongTokenReason(idp, subject, token, servedAt, accepted.has(token)).catch(
          (error: unknown) => `check failed: ${String(error)}`
        )
        checked++
        if (reason !== undefined) wrong.push(`${subject}: ${reason}`)
        else accepted.add(token)
        if (
          grant !== undefined &&
          grant.source !== "cache" &&
          grant.status !== "active" &&
          grant.status !== "unknown"
        ) {
          wrong.push(`${subject}: served from ${grant.source} while the grant read ${grant.status}`)
        }
      })
    },
    settle: async () => {
      await chain
      return { checked, wrong: [...wrong] }
    }
  }
}
