/**
 * A broker in its own OS process, the one worker of the reliability tests, the chaos suite and the
 * refresh-storm benchmark: its own in-process cache, single flight and lease owner id, sharing only the
 * store (and the provider) with its siblings. Started by `workerProcess.ts` as
 * `node --import tsx brokerWorker.ts` with an IPC channel; it waits for an `init` message, builds its
 * broker with the Promise facade on the store named by `init.store` (with the resilience settings, the
 * stop-at-step hook and the provider route `init` names), answers `ready`, then serves requests. It
 * exits when the parent goes away.
 */
import { performance } from "node:perf_hooks"
import { createTokenBroker, GrantStore, KeyRing, type TokenBrokerClient } from "@token-broker/core"
import { Duration, Effect, Layer, Metric } from "effect"
import { storeLayer } from "../../src/StoreSpec.js"
import { providerConfig, tokenHash } from "./provider.js"
import { bump, decodeKeys, describeError, send as post, runWorkerLoop } from "./workerLoop.js"
import type {
  BurstResult,
  CallError,
  CallOutcome,
  FromWorker,
  LoadOp,
  LoadResult,
  MetricsSnapshot,
  RevealedOutcome,
  StormResult,
  SubjectOutcome,
  Tallies,
  ToWorker,
  WorkerInit,
  WorkerOp
} from "./workerProtocol.js"

const send = (message: FromWorker): void => post(message)

let releaseStop: (() => void) | undefined
let stopped = false

const storeOf = (init: WorkerInit) =>
  init.control === "lease-excludes-nothing"
    ? Layer.effect(
        GrantStore.GrantStore,
        Effect.map(GrantStore.GrantStore, (shared) => ({
          ...shared,
          acquireLease: () => Effect.succeed(true),
          renewLease: () => Effect.succeed(true)
        }))
      ).pipe(Layer.provide(storeLayer(init.store)))
    : storeLayer(init.store)

const start = (init: WorkerInit): Promise<TokenBrokerClient> => {
  const provider = providerConfig(init.provider)
  const stopAt = init.stopAt
  return createTokenBroker({
    store: storeOf(init),
    keyRing: KeyRing.layerLocal({ keys: decodeKeys(init.keys) }),
    providers: [
      init.internalBaseUrl === undefined
        ? provider
        : { ...provider, internalBaseUrl: { from: init.provider.issuer, to: init.internalBaseUrl } }
    ],
    broker: {
      instanceId: init.broker.instanceId,
      lease: { ttl: Duration.millis(init.broker.leaseTtlMs), wait: Duration.millis(init.broker.leaseWaitMs) },
      ...(init.earlyRefreshMs === undefined ? {} : { earlyRefresh: Duration.millis(init.earlyRefreshMs) }),
      ...(init.maxConcurrentRefreshes === undefined
        ? {}
        : { maxConcurrentRefreshes: init.maxConcurrentRefreshes }),
      ...(init.circuit === undefined
        ? {}
        : {
            circuit: {
              failureThreshold: init.circuit.failureThreshold,
              openFor: Duration.millis(init.circuit.openForMs)
            }
          }),
      ...(init.retry === undefined
        ? {}
        : {
            retry: {
              attempts: init.retry.attempts,
              baseDelay: Duration.millis(init.retry.baseDelayMs),
              deadline: Duration.millis(init.retry.deadlineMs)
            }
          }),
      ...(stopAt === undefined
        ? {}
        : {
            onRefreshStep: (step, key) =>
              step !== stopAt || stopped
                ? Effect.void
                : Effect.async<void>((resume) => {
                    stopped = true
                    releaseStop = () => resume(Effect.void)
                    send({ type: "step", step, subject: key.subject })
                  })
          })
    }
  })
}

/** Serves of one subject checked at most this often, besides every new token. */
const SAMPLE_MS = 250

const kindOf = (error: CallError) => `${error.tag}:${error.reason ?? error.code ?? "?"}`

/** Counts calls' outcomes into `Tallies`: the part every op of many calls answers. */
const tally = () => {
  let ok = 0
  const failures: Record<string, number> = {}
  const sources: Record<string, number> = {}
  return {
    count: (outcome: RevealedOutcome): void => {
      if (outcome.ok) {
        ok++
        bump(sources, outcome.source)
      } else bump(failures, kindOf(outcome.error))
    },
    totals: (): Tallies => ({ ok, failures, sources })
  }
}

/** One call, with the token itself: what leaves the process is decided by `answer`. */
const call = async (
  broker: TokenBrokerClient,
  provider: string,
  subject: string
): Promise<RevealedOutcome> => {
  const startedAt = Date.now()
  try {
    const token = await broker.backgroundToken({ subject, provider })
    return {
      startedAt,
      endedAt: Date.now(),
      ok: true,
      accessToken: token.accessToken,
      tokenHash: tokenHash(token.accessToken),
      expiresAt: token.expiresAt,
      source: token.source
    }
  } catch (error) {
    return { startedAt, endedAt: Date.now(), ok: false, error: describeError(error) }
  }
}

/** The outcome as the parent may see it: the token only for a worker started with `revealTokens`. */
const answer = (init: WorkerInit, outcome: RevealedOutcome): CallOutcome => {
  if (!outcome.ok || init.revealTokens === true) return outcome
  const { accessToken: _token, ...rest } = outcome
  return rest
}

const burst = async (
  broker: TokenBrokerClient,
  provider: string,
  subjects: ReadonlyArray<string>,
  callsPerSubject: number
): Promise<BurstResult> => {
  const startedAt = Date.now()
  const t0 = performance.now()
  const perSubject = await Promise.all(
    subjects.map(async (subject): Promise<SubjectOutcome> => {
      const outcomes = await Promise.all(
        Array.from({ length: callsPerSubject }, () => call(broker, provider, subject))
      )
      const counts = tally()
      const firstFailure: Record<string, { message: string; at: number }> = {}
      const tokens: Record<string, number> = {}
      for (const outcome of outcomes) {
        counts.count(outcome)
        if (outcome.ok) bump(tokens, outcome.tokenHash)
        else firstFailure[kindOf(outcome.error)] ??= { message: outcome.error.message, at: outcome.endedAt }
      }
      return { subject, ...counts.totals(), firstFailure, tokens }
    })
  )
  return {
    pid: process.pid,
    startedAt,
    endedAt: startedAt + Math.round(performance.now() - t0),
    subjects: perSubject
  }
}

const load = async (broker: TokenBrokerClient, init: WorkerInit, op: LoadOp): Promise<LoadResult> => {
  const provider = init.provider.id
  const until = Date.now() + op.durationMs
  const seen = new Map<string, Set<string>>()
  const lastSampled = new Map<string, number>()
  const counts = tally()
  const failureSpans: Record<string, { first: number; last: number }> = {}
  let calls = 0
  let lastRefreshAt: number | null = null
  const loop = async () => {
    while (Date.now() < until) {
      const subject = op.subjects[Math.floor(Math.random() * op.subjects.length)] ?? ""
      const outcome = await call(broker, provider, subject)
      calls++
      counts.count(outcome)
      if (outcome.ok) {
        if (outcome.source === "refresh") lastRefreshAt = outcome.endedAt
        const tokens = seen.get(subject) ?? new Set<string>()
        seen.set(subject, tokens)
        // every new token, and a sample of every serve: at most one per subject per SAMPLE_MS, so a
        // token served again after it expired (or after its grant was marked) is seen too
        const fresh = !tokens.has(outcome.tokenHash)
        const due = outcome.endedAt - (lastSampled.get(subject) ?? 0) >= SAMPLE_MS
        if (init.revealTokens === true && (fresh || due)) {
          tokens.add(outcome.tokenHash)
          lastSampled.set(subject, outcome.endedAt)
          const grant = await broker.grantStatus({ subject, provider }).catch(() => undefined)
          send({
            type: "token",
            subject,
            accessToken: outcome.accessToken,
            servedAt: outcome.endedAt,
            expiresAt: outcome.expiresAt,
            source: outcome.source,
            grantStatus: grant?.status ?? "unknown"
          })
        }
      } else {
        const kind = kindOf(outcome.error)
        const span = failureSpans[kind]
        if (span === undefined) failureSpans[kind] = { first: outcome.endedAt, last: outcome.endedAt }
        else span.last = outcome.endedAt
      }
      await new Promise((resolve) => setTimeout(resolve, op.pauseMs))
    }
  }
  await Promise.all(Array.from({ length: op.concurrency }, loop))
  return { ...counts.totals(), calls, failureSpans, lastRefreshAt }
}

const storm = async (
  broker: TokenBrokerClient,
  provider: string,
  subjects: ReadonlyArray<string>
): Promise<StormResult> => {
  const started = performance.now()
  const outcomes = await Promise.all(
    subjects.map(async (subject) => {
      const t0 = performance.now()
      const outcome = await call(broker, provider, subject)
      return { outcome, ms: performance.now() - t0 }
    })
  )
  const wallMs = performance.now() - started
  const counts = tally()
  const tokens = new Set<string>()
  for (const { outcome } of outcomes) {
    counts.count(outcome)
    if (outcome.ok) tokens.add(outcome.tokenHash)
  }
  return {
    ...counts.totals(),
    latenciesMs: outcomes.map(({ ms }) => Math.round(ms * 100) / 100),
    wallMs: Math.round(wallMs),
    distinctTokens: tokens.size
  }
}

const metrics = (): MetricsSnapshot =>
  Effect.runSync(Metric.snapshot).flatMap((pair) => {
    const state = pair.metricState as { count?: unknown }
    if (typeof state.count !== "number" && typeof state.count !== "bigint") return []
    const labels = pair.metricKey.tags.map((tag) => `${tag.key}=${tag.value}`).join(",")
    return [{ name: pair.metricKey.name, labels, value: Number(state.count) }]
  })

const serve = async (broker: TokenBrokerClient, init: WorkerInit, op: WorkerOp): Promise<unknown> => {
  const provider = init.provider.id
  switch (op.kind) {
    case "token":
      return answer(init, await call(broker, provider, op.subject))
    case "burst":
      return burst(broker, provider, op.subjects, op.callsPerSubject)
    case "load":
      return load(broker, init, op)
    case "storm":
      return storm(broker, provider, op.subjects)
    case "metrics":
      return metrics()
  }
}

runWorkerLoop<WorkerInit, WorkerOp>({
  start,
  serve,
  other: (message) => {
    if ((message as ToWorker).type === "continue") {
      releaseStop?.()
      releaseStop = undefined
    }
  }
})
