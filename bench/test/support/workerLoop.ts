/**
 * The worker side of a bench broker process (`brokerWorker.ts`): keys decoded from the parent's init,
 * errors described for the wire, and the IPC loop - `init` builds the broker and answers `ready` (or
 * `fatal`), each `request` is served and answered `response`, and the process exits when its parent
 * goes away.
 */
import { KeyRing, type TokenBrokerClient } from "@token-broker/core"
import { Effect, Redacted } from "effect"
import type { CallError } from "./workerProtocol.js"

export const describeError = (error: unknown): CallError => {
  const fields = (typeof error === "object" && error !== null ? error : {}) as Record<string, unknown>
  const text = (value: unknown) => (typeof value === "string" ? value : undefined)
  return {
    tag: text(fields._tag) ?? (error instanceof Error ? error.name : "unknown"),
    code: text(fields.code),
    reason: text(fields.reason),
    message: text(fields.message) ?? String(error)
  }
}

export const decodeKeys = (keys: ReadonlyArray<{ readonly kid: string; readonly material: string }>) =>
  keys.map(({ kid, material }) => Effect.runSync(KeyRing.decodeKey(kid, Redacted.make(material))))

/** Counts one more `key` in a tally sent back to the parent. */
export const bump = (counts: Record<string, number>, key: string): void => {
  counts[key] = (counts[key] ?? 0) + 1
}

export const send = (message: unknown): void => {
  process.send?.(message)
}

type Incoming<Init, Op> =
  | { readonly type: "init"; readonly init: Init }
  | { readonly type: "request"; readonly id: number; readonly op: Op }
  | { readonly type: string }

/** Runs the worker's IPC loop; `other` receives the worker's own messages (e.g. chaos's `continue`). */
export const runWorkerLoop = <Init, Op>(worker: {
  readonly start: (init: Init) => Promise<TokenBrokerClient>
  readonly serve: (broker: TokenBrokerClient, init: Init, op: Op) => Promise<unknown>
  readonly other?: (message: { readonly type: string }) => void
}): void => {
  let broker: TokenBrokerClient | undefined
  let initialized: Init | undefined
  process.on("disconnect", () => process.exit(1))
  process.on("message", (message: Incoming<Init, Op>) => {
    if (message.type === "init" && "init" in message) {
      initialized = message.init
      worker.start(message.init).then(
        (built) => {
          broker = built
          send({ type: "ready", pid: process.pid })
        },
        (error: unknown) => {
          const described = describeError(error)
          send({
            type: "fatal",
            message: `building the broker failed: ${described.tag}: ${described.message}`
          })
          process.exit(1)
        }
      )
      return
    }
    if (message.type === "request" && "op" in message) {
      const ready = broker
      const init = initialized
      if (ready === undefined || init === undefined) {
        send({ type: "fatal", message: "request before the broker was ready" })
        process.exit(1)
      }
      void worker
        .serve(ready, init, message.op)
        .then((value) => send({ type: "response", id: message.id, value }))
      return
    }
    worker.other?.(message)
  })
}
