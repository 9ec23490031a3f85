import { z } from "zod"

const count = z.number().int().positive().default(1)
const filters = {
  /** Only token requests with this `grant_type` are affected (default: all). */
  grantType: z.string().min(1).optional(),
  /** Only token requests of this client are affected (default: all). */
  clientId: z.string().min(1).optional()
}

/** A fault for the next `count` token-endpoint requests (that match the optional filters). */
export const FaultSpecSchema = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("status"), status: z.number().int().min(400).max(599), count, ...filters }),
  /**
   * That status without an OAuth error: no body at all (as Glewlwyd refuses a replayed refresh token), or
   * `body` sent as `contentType` (default text/plain), e.g. an HTML error page of a proxy.
   */
  z.object({
    kind: z.literal("bare_status"),
    status: z.number().int().min(400).max(599),
    body: z.string().optional(),
    contentType: z.string().min(1).default("text/plain"),
    count,
    ...filters
  }),
  z.object({
    kind: z.literal("rate_limit"),
    retryAfterSeconds: z.number().int().min(0).default(1),
    count,
    ...filters
  }),
  z.object({ kind: z.literal("invalid_grant"), count, ...filters }),
  z.object({ kind: z.literal("latency"), ms: z.number().int().min(0).max(600_000), count, ...filters }),
  z.object({ kind: z.literal("hang"), count, ...filters }),
  /**
   * The request is processed for real (a refresh token is rotated, the old one consumed), then the answer
   * is replaced: `status` (default 502, an OAuth-style error body), `json_invalid` (the real JSON with an
   * unknown `token_type`: JSON a client library rejects, still carrying the new `refresh_token`),
   * `non_json` (the real body cut short: not JSON) or `drop` (the connection is destroyed, no answer).
   */
  z.object({
    kind: z.literal("after_commit"),
    answer: z.enum(["status", "json_invalid", "non_json", "drop"]),
    status: z.number().int().min(500).max(599).default(502),
    count,
    ...filters
  })
])

export type FaultSpec = z.input<typeof FaultSpecSchema>
export type Fault = z.output<typeof FaultSpecSchema>

/** An active fault with the number of requests it still affects. */
export interface ActiveFault {
  readonly fault: Fault
  readonly remaining: number
}

/**
 * Fault injection for the token endpoint. Faults are consumed in the order they were injected; each
 * matching request takes one from the first fault that still has requests left.
 */
export class Faults {
  #queue: Array<{ fault: Fault; remaining: number }> = []

  /** Adds a fault; throws a `z.ZodError` for an invalid spec. */
  inject(spec: FaultSpec): Fault {
    const fault = FaultSpecSchema.parse(spec)
    this.#queue.push({ fault, remaining: fault.count })
    return fault
  }

  clear(): void {
    this.#queue = []
  }

  active(): ReadonlyArray<ActiveFault> {
    return this.#queue.map(({ fault, remaining }) => ({ fault, remaining }))
  }

  /** Takes one request from the first fault that matches; `undefined` when none applies. */
  take(request: { grantType: string | undefined; clientId: string | undefined }): Fault | undefined {
    const index = this.#queue.findIndex(
      ({ fault }) =>
        (fault.grantType === undefined || fault.grantType === request.grantType) &&
        (fault.clientId === undefined || fault.clientId === request.clientId)
    )
    const entry = this.#queue[index]
    if (entry === undefined) return undefined
    entry.remaining -= 1
    if (entry.remaining <= 0) this.#queue.splice(index, 1)
    return entry.fault
  }
}
