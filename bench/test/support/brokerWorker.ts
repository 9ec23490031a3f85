/**
 * A broker in its own OS process, for the cross-process tests: its own in-process cache, single flight
 * and lease owner id, sharing only the store (and the provider) with its siblings. Started by
 * `workers.ts` as `node --import tsx brokerWorker.ts` with an IPC channel; it waits for an `init`
 * message, builds its broker with the Promise facade on the store named by `init.store`, answers
 * `ready`, then serves requests. It exits when the parent goes away.
 */
import { performance } from "node:perf_hooks"
import { createTokenBroker, GrantStore, KeyRing, type TokenBrokerClient } from "@token-broker/core"
import { Duration, Effect, Layer } from "effect"
import { storeLayer } from "../../src/StoreSpec.js"
import { providerConfig, tokenHash } from "./provider.js"
import { bump, decodeKeys, describeError, runWorkerLoop } from "./workerLoop.js"
import type { BurstResult, CallOutcome, SubjectOutcome, WorkerInit, WorkerOp } from "./workerProtocol.js"

const start = async (init: WorkerInit): Promise<TokenBrokerClient> => {
  const keys = decodeKeys(init.keys)
  const store =
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
  return createTokenBroker({
    store,
    keyRing: KeyRing.layerLocal({ keys }),
    providers: [providerConfig(init.provider)],
    broker: {
      instanceId: init.broker.instanceId,
      lease: { ttl: Duration.millis(init.broker.leaseTtlMs), wait: Duration.millis(init.broker.leaseWaitMs) }
    }
  })
}

const call = async (broker: TokenBrokerClient, provider: string, subject: string): Promise<CallOutcome> => {
  const startedAt = Date.now()
  try {
    const token = await broker.backgroundToken({ subject, provider })
    return {
      startedAt,
      endedAt: Date.now(),
      ok: true,
      tokenHash: tokenHash(token.accessToken),
      source: token.source
    }
  } catch (error) {
    return { startedAt, endedAt: Date.now(), ok: false, error: describeError(error) }
  }
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
      const failures: Record<string, number> = {}
      const firstFailure: Record<string, { message: string; at: number }> = {}
      const tokens: Record<string, number> = {}
      const sources: Record<string, number> = {}
      let ok = 0
      for (const outcome of outcomes) {
        if (outcome.ok) {
          ok++
          bump(tokens, outcome.tokenHash)
          bump(sources, outcome.source)
        } else {
          const kind = `${outcome.error.tag}:${outcome.error.reason ?? outcome.error.code ?? "?"}`
          bump(failures, kind)
          firstFailure[kind] ??= { message: outcome.error.message, at: outcome.endedAt }
        }
      }
      return { subject, ok, failures, firstFailure, tokens, sources }
    })
  )
  return {
    pid: process.pid,
    startedAt,
    endedAt: startedAt + Math.round(performance.now() - t0),
    subjects: perSubject
  }
}

const serve = (broker: TokenBrokerClient, init: WorkerInit, op: WorkerOp): Promise<unknown> => {
  switch (op.kind) {
    case "burst":
      return burst(broker, init.provider.id, op.subjects, op.callsPerSubject)
    case "token":
      return call(broker, init.provider.id, op.subject)
  }
}

runWorkerLoop<WorkerInit, WorkerOp>({ start, serve })
