import type { TokenBroker } from "@token-broker/core"
import fc from "fast-check"

/**
 * A fault schedule: what two or three broker instances on one store do, and which fault is armed
 * before each step. Plain data, so a failing schedule prints as JSON and replays from fast-check's seed.
 */

export type RefreshStep = TokenBroker.RefreshStep

/** What a caller asks: the grant's full scopes or a downscoped token, and a minimum lifetime. */
export interface CallSpec {
  readonly broker: number
  readonly scopes: "all" | "read"
  readonly minTtlSeconds: 0 | 30 | 90
}

/** A provider fault for the next refresh request (dev-idp fault injection). */
export type ProviderFault =
  | "status_500"
  | "status_503"
  | "rate_limit"
  | "hang"
  | "invalid_grant"
  | "commit_then_502"
  | "commit_then_json_invalid"
  | "commit_then_non_json"
  | "commit_then_drop"

export type StoreOp = "get" | "compareAndSet" | "acquireLease" | "renewLease" | "releaseLease"

export type Step =
  /** One backgroundToken call. */
  | { readonly kind: "call"; readonly call: CallSpec }
  /** Calls at once on several brokers, optionally beside a key rotation (a concurrent writer). */
  | {
      readonly kind: "race"
      readonly calls: ReadonlyArray<CallSpec>
      readonly keyRotation: boolean
    }
  /** Time passes (every broker's clock jumps forward): tokens come due, leases and circuits expire. */
  | { readonly kind: "advance"; readonly seconds: 30 | 200 | 400 }
  /** The next `count` calls of `op` on this broker's store fail with StorageUnavailable. */
  | { readonly kind: "storeFault"; readonly broker: number; readonly op: StoreOp; readonly count: 1 | 3 }
  /** This broker's next lease renewal takes longer than the lease lives. */
  | { readonly kind: "slowRenewal"; readonly broker: number }
  /** This broker stalls (a GC pause, a stopped process) at a step of its next refresh, past its lease. */
  | { readonly kind: "pause"; readonly broker: number; readonly at: RefreshStep }
  /**
   * When this broker's next refresh reaches `at`, a concurrent writer runs right then: `keys rotate`, or a
   * revoke through the next broker. The refresh waits for it (at most as long as a stall).
   */
  | {
      readonly kind: "writerAt"
      readonly broker: number
      readonly at: RefreshStep
      readonly writer: "rotateKeys" | "revoke"
    }
  /** The next refresh request at the provider meets this fault. */
  | { readonly kind: "provider"; readonly fault: ProviderFault }
  /** `keys rotate`: every grant re-encrypted under a new key (a concurrent writer of the grant). */
  | { readonly kind: "rotateKeys" }
  /** `revoke` through a broker, then optionally consent again (a new grant under the same key). */
  | { readonly kind: "revoke"; readonly broker: number; readonly reconsent: boolean }

export interface ExplorerShape {
  /** Broker instances sharing the store (2 or 3). */
  readonly brokers: number
  readonly minSteps: number
  readonly maxSteps: number
  /** Callers also ask downscoped tokens (default true); false explores one scope set only. */
  readonly downscoped?: boolean | undefined
}

const providerFaults: ReadonlyArray<ProviderFault> = [
  "status_500",
  "status_503",
  "rate_limit",
  "hang",
  "invalid_grant",
  "commit_then_502",
  "commit_then_json_invalid",
  "commit_then_non_json",
  "commit_then_drop"
]

export const callArb = (brokers: number, downscoped = true): fc.Arbitrary<CallSpec> =>
  fc.record({
    broker: fc.integer({ min: 0, max: brokers - 1 }),
    scopes: downscoped ? fc.constantFrom<"all" | "read">("all", "all", "read") : fc.constant("all" as const),
    minTtlSeconds: fc.constantFrom<0 | 30 | 90>(0, 0, 30, 90)
  })

export const stepArb = (brokers: number, downscoped = true): fc.Arbitrary<Step> => {
  const broker = fc.integer({ min: 0, max: brokers - 1 })
  return fc.oneof(
    { weight: 5, arbitrary: callArb(brokers, downscoped).map((call): Step => ({ kind: "call", call })) },
    {
      weight: 4,
      arbitrary: fc
        .record({
          calls: fc.array(callArb(brokers, downscoped), { minLength: 2, maxLength: 4 }),
          keyRotation: fc.boolean()
        })
        .map((r): Step => ({ kind: "race", ...r }))
    },
    {
      weight: 4,
      arbitrary: fc
        .constantFrom<30 | 200 | 400>(30, 200, 400, 400)
        .map((seconds): Step => ({ kind: "advance", seconds }))
    },
    {
      weight: 2,
      arbitrary: fc
        .record({
          broker,
          op: fc.constantFrom<StoreOp>("get", "compareAndSet", "acquireLease", "renewLease", "releaseLease"),
          count: fc.constantFrom<1 | 3>(1, 3)
        })
        .map((r): Step => ({ kind: "storeFault", ...r }))
    },
    { weight: 1, arbitrary: broker.map((b): Step => ({ kind: "slowRenewal", broker: b })) },
    {
      weight: 1,
      arbitrary: fc
        .record({
          broker,
          at: fc.constantFrom<RefreshStep>("before_upstream", "after_upstream", "after_write")
        })
        .map((r): Step => ({ kind: "pause", ...r }))
    },
    {
      weight: 2,
      arbitrary: fc
        .record({
          broker,
          at: fc.constantFrom<RefreshStep>("before_upstream", "after_upstream", "after_write"),
          writer: fc.constantFrom<"rotateKeys" | "revoke">("rotateKeys", "rotateKeys", "revoke")
        })
        .map((r): Step => ({ kind: "writerAt", ...r }))
    },
    {
      weight: 4,
      arbitrary: fc.constantFrom(...providerFaults).map((fault): Step => ({ kind: "provider", fault }))
    },
    { weight: 1, arbitrary: fc.constant<Step>({ kind: "rotateKeys" }) },
    {
      weight: 1,
      arbitrary: fc.record({ broker, reconsent: fc.boolean() }).map((r): Step => ({ kind: "revoke", ...r }))
    }
  )
}

export const scheduleArb = (shape: ExplorerShape): fc.Arbitrary<ReadonlyArray<Step>> =>
  fc.array(stepArb(shape.brokers, shape.downscoped ?? true), {
    minLength: shape.minSteps,
    maxLength: shape.maxSteps
  })

const callText = (c: CallSpec) =>
  `b${c.broker}.token(${c.scopes}${c.minTtlSeconds > 0 ? `, minTtl ${c.minTtlSeconds}s` : ""})`

/** One line per step, for reports. */
export const describeStep = (step: Step): string => {
  switch (step.kind) {
    case "call":
      return callText(step.call)
    case "race":
      return `race[${step.calls.map(callText).join(" | ")}${step.keyRotation ? " | keys rotate" : ""}]`
    case "advance":
      return `time +${step.seconds}s`
    case "storeFault":
      return `b${step.broker}.store.${step.op} fails x${step.count}`
    case "slowRenewal":
      return `b${step.broker} next lease renewal stalls past the lease`
    case "pause":
      return `b${step.broker} stalls at ${step.at} past its lease`
    case "writerAt":
      return `when b${step.broker} reaches ${step.at}: ${step.writer === "rotateKeys" ? "keys rotate" : "revoke through the next broker"}`
    case "provider":
      return `provider: next refresh ${step.fault}`
    case "rotateKeys":
      return "keys rotate"
    case "revoke":
      return `b${step.broker}.revoke${step.reconsent ? " + consent again" : ""}`
  }
}
