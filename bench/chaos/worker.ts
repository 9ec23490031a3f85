/**
 * A broker in its own OS process for the chaos suite: the reliability suite's worker idea
 * (`test/support/brokerWorker.ts`: the Promise facade on a store built from a plain spec, one lease
 * owner id per process) plus what chaos needs - a hook that stops the refresh at a precise step until
 * the parent lets it go on (or kills it), resilience settings, a proxy in front of dev-idp, load loops,
 * and the served tokens sent back for checking. Started by `harness.ts` as `node --import tsx worker.ts`.
 */
import { performance } from "node:perf_hooks"
import { createTokenBroker, KeyRing, type TokenBrokerClient } from "@token-broker/core"
import { Duration, Effect, Metric } from "effect"
import { storeLayer } from "../src/StoreSpec.js"
import { providerConfig } from "../test/support/provider.js"
import { bump, decodeKeys, describeError, send as post, runWorkerLoop } from "../test/support/workerLoop.js"
import type { CallError } from "../test/support/workerProtocol.js"
import type {
  ChaosInit,
  ChaosOp,
  FromChaosWorker,
  LoadResult,
  MetricsSnapshot,
  StormResult,
  ToChaosWorker,
  TokenResult
} from "./protocol.js"

const send = (message: FromChaosWorker): void => post(message)

let releaseStop: (() => void) | undefined
let stopped = false

const start = (init: ChaosInit): Promise<TokenBrokerClient> => {
  const base = init.base
  const keys = decodeKeys(base.keys)
  const provider = providerConfig(base.provider)
  const stopAt = init.stopAt
  return createTokenBroker({
    store: storeLayer(base.store),
    keyRing: KeyRing.layerLocal({ keys }),
    providers: [
      init.internalBaseUrl === undefined
        ? provider
        : { ...provider, internalBaseUrl: { from: base.provider.issuer, to: init.internalBaseUrl } }
    ],
    broker: {
      instanceId: base.broker.instanceId,
      lease: { ttl: Duration.millis(base.broker.leaseTtlMs), wait: Duration.millis(base.broker.leaseWaitMs) },
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

const call = async (broker: TokenBrokerClient, provider: string, subject: string): Promise<TokenResult> => {
  const startedAt = Date.now()
  try {
    const token = await broker.backgroundToken({ subject, provider })
    return {
      startedAt,
      endedAt: Date.now(),
      ok: true,
      accessToken: token.accessToken,
      expiresAt: token.expiresAt,
      source: token.source
    }
  } catch (error) {
    return { startedAt, endedAt: Date.now(), ok: false, error: describeError(error) }
  }
}

const load = async (
  broker: TokenBrokerClient,
  provider: string,
  op: Extract<ChaosOp, { kind: "load" }>
): Promise<LoadResult> => {
  const until = Date.now() + op.durationMs
  const seen = new Map<string, Set<string>>()
  const lastSampled = new Map<string, number>()
  const failures: Record<string, number> = {}
  const failureSpans: Record<string, { first: number; last: number }> = {}
  const sources: Record<string, number> = {}
  let calls = 0
  let ok = 0
  let lastRefreshAt: number | null = null
  const loop = async () => {
    while (Date.now() < until) {
      const subject = op.subjects[Math.floor(Math.random() * op.subjects.length)] ?? ""
      const outcome = await call(broker, provider, subject)
      calls++
      if (outcome.ok) {
        ok++
        bump(sources, outcome.source)
        if (outcome.source === "refresh") lastRefreshAt = outcome.endedAt
        const tokens = seen.get(subject) ?? new Set<string>()
        seen.set(subject, tokens)
        // every new token, and a sample of every serve: at most one per subject per SAMPLE_MS, so a
        // token served again after it expired (or after its grant was marked) is seen too
        const fresh = !tokens.has(outcome.accessToken)
        const due = outcome.endedAt - (lastSampled.get(subject) ?? 0) >= SAMPLE_MS
        if (fresh || due) {
          tokens.add(outcome.accessToken)
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
        bump(failures, kind)
        const span = failureSpans[kind]
        if (span === undefined) failureSpans[kind] = { first: outcome.endedAt, last: outcome.endedAt }
        else span.last = outcome.endedAt
      }
      await new Promise((resolve) => setTimeout(resolve, op.pauseMs))
    }
  }
  await Promise.all(Array.from({ length: op.concurrency }, loop))
  return { calls, ok, failures, failureSpans, sources, lastRefreshAt }
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
  const failures: Record<string, number> = {}
  const sources: Record<string, number> = {}
  const tokens = new Set<string>()
  let ok = 0
  for (const { outcome } of outcomes) {
    if (outcome.ok) {
      ok++
      tokens.add(outcome.accessToken)
      bump(sources, outcome.source)
    } else bump(failures, kindOf(outcome.error))
  }
  return {
    ok,
    failures,
    latenciesMs: outcomes.map(({ ms }) => Math.round(ms * 100) / 100),
    wallMs: Math.round(wallMs),
    distinctTokens: tokens.size,
    sources
  }
}

const metrics = (): MetricsSnapshot =>
  Effect.runSync(Metric.snapshot).flatMap((pair) => {
    const state = pair.metricState as { count?: unknown }
    if (typeof state.count !== "number" && typeof state.count !== "bigint") return []
    const labels = pair.metricKey.tags.map((tag) => `${tag.key}=${tag.value}`).join(",")
    return [{ name: pair.metricKey.name, labels, value: Number(state.count) }]
  })

const serve = (broker: TokenBrokerClient, init: ChaosInit, op: ChaosOp): Promise<unknown> => {
  const provider = init.base.provider.id
  switch (op.kind) {
    case "token":
      return call(broker, provider, op.subject)
    case "load":
      return load(broker, provider, op)
    case "storm":
      return storm(broker, provider, op.subjects)
    case "metrics":
      return Promise.resolve(metrics())
  }
}

runWorkerLoop<ChaosInit, ChaosOp>({
  start,
  serve,
  other: (message) => {
    if ((message as ToChaosWorker).type === "continue") {
      releaseStop?.()
      releaseStop = undefined
    }
  }
})
