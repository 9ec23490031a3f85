import type { GrantKey } from "../Grant.js"

/** What the conformance suite asks a child process holding its own instance of the store to do. */
export type ChildCommand =
  | { readonly op: "acquire"; readonly name: string; readonly owner: string; readonly ttlMs: number }
  | { readonly op: "renew"; readonly name: string; readonly owner: string; readonly ttlMs: number }
  | { readonly op: "release"; readonly name: string; readonly owner: string }
  | {
      /**
       * `iterations` times: under `withLease(name)`, read the grant at `key`, wait `holdMs`, then
       * compare-and-set it to the next version. Answers how many writes conflicted.
       */
      readonly op: "incrementUnderLease"
      readonly name: string
      readonly owner: string
      readonly key: GrantKey
      readonly iterations: number
      readonly holdMs: number
      readonly ttlMs: number
    }

export type ChildMessage =
  | { readonly ready: true }
  | { readonly fatal: string }
  | { readonly id: number; readonly value: unknown }
  | { readonly id: number; readonly error: string }
