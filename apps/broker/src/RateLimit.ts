import type { CallerPolicy, Config } from "@token-broker/config"
import { Duration } from "effect"
import type { FastifyReply, FastifyRequest } from "fastify"
import { type HttpProblem, httpProblem } from "./Problems.js"

/**
 * Requests per caller (per client address before authentication) and fixed time window, on every route
 * that does not opt out (`config.rateLimit: false`: health, readiness, metrics; an unknown route is not
 * limited either). It runs in the server's one `preValidation` hook, right after caller authentication
 * (it is keyed by the caller) and before the route's schemas, so a malformed request counts as much as
 * a good one. Every limited answer says `x-ratelimit-limit` (the
 * window's requests), `x-ratelimit-remaining` and `x-ratelimit-reset` (whole seconds until the window
 * ends); beyond the limit a 429 problem with `retry-after` as well. A refused request still counts, and
 * does not extend the window.
 *
 * This replaces @fastify/rate-limit (its local store, with the same windows, counts, bound of 5,000
 * tracked keys with the least recently used forgotten first, headers and 429): its hook is an async
 * function that awaits the key and then a promise around the store's callback, so each request paid for
 * three promises and the hook's resolution through fastify's promise path - measured at 1.5-2 us of a
 * background token's ~27 us cache hit (perf profile of bench/http.ts; its own code was 0.8 us). Here the
 * count is a Map read and write inside the hook that authenticates the caller: no hook of its own.
 */
declare module "fastify" {
  interface FastifyContextConfig {
    /** false: this route is not rate limited. */
    rateLimit?: false
  }
}

/** Keys (callers, client addresses) whose windows are tracked at once. */
export const MAX_TRACKED_KEYS = 5000

interface Window {
  count: number
  readonly startedAt: number
}

/** A duration as @fastify/rate-limit wrote it in its message (@lukeed/ms's long format), e.g. "1 minute". */
const spoken = (ms: number) => {
  const units: ReadonlyArray<readonly [number, string]> = [
    [365.25 * 86_400_000, "year"],
    [86_400_000, "day"],
    [3_600_000, "hour"],
    [60_000, "minute"],
    [1000, "second"]
  ]
  for (const [index, [size, name]] of units.entries()) {
    const larger = units[index - 1]
    if (ms >= size && (larger === undefined || ms < larger[0])) {
      const value = ms / size
      const n = (value | 0) === value ? value : ~~(value + 0.5)
      return `${n} ${name}${n !== 1 ? "s" : ""}`
    }
  }
  return `${ms} ms`
}

/**
 * The check of one request: counts it and sets the three headers, and answers the 429 problem to
 * refuse it with (undefined: go on). Run by the server's one `preValidation` hook after caller
 * authentication (`installCallerAuthentication`), on matched routes that do not opt out.
 */
export type RateLimit = (request: FastifyRequest, reply: FastifyReply) => HttpProblem | undefined

export const makeRateLimit = (limits: Config["server"]["rateLimit"]): RateLimit => {
  const max = Math.trunc(limits.max)
  const windowMs = Math.trunc(Duration.toMillis(limits.timeWindow))
  const limit = String(max)
  // the reset header's text for every whole second a window can have left (up to an hour; longer
  // windows format theirs per request)
  const resetTexts = Array.from({ length: Math.min(3600, Math.ceil(windowMs / 1000)) + 1 }, (_, n) =>
    String(n)
  )
  const resetText = (seconds: number) => resetTexts[seconds] ?? String(seconds)
  // insertion order is recency: a key read is moved to the end, the first one is the least recently
  // used. A caller is keyed by its policy object (one per registered caller, fixed for the process: no
  // key string to build and hash per request), a client address by its text.
  const windows = new Map<CallerPolicy | string, Window>()

  return (request, reply) => {
    const key = request.caller ?? `ip:${request.ip}`
    const now = Date.now()
    let window = windows.get(key)
    if (window !== undefined) windows.delete(key)
    else if (windows.size >= MAX_TRACKED_KEYS) {
      const oldest = windows.keys().next()
      if (oldest.done !== true) windows.delete(oldest.value)
    }
    if (window === undefined || window.startedAt + windowMs <= now) window = { count: 1, startedAt: now }
    else window.count += 1
    windows.set(key, window)
    const reset = Math.ceil((windowMs - (now - window.startedAt)) / 1000)
    void reply.header("x-ratelimit-limit", limit)
    if (window.count <= max) {
      void reply.header("x-ratelimit-remaining", String(max - window.count))
      void reply.header("x-ratelimit-reset", resetText(reset))
      return undefined
    }
    void reply.header("x-ratelimit-remaining", "0")
    void reply.header("x-ratelimit-reset", resetText(reset))
    return httpProblem(
      429,
      "rate_limited",
      "Too many requests",
      `Rate limit of ${max} requests exceeded; retry after ${spoken(reset * 1000)}`,
      { headers: { "retry-after": String(Math.max(1, reset)) } }
    )
  }
}
