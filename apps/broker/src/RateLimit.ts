import type { Config } from "@token-broker/config"
import { Duration } from "effect"
import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from "fastify"
import { httpProblem } from "./Problems.js"

/**
 * Requests per caller (per client address before authentication) and fixed time window, on every route
 * that does not opt out (`config.rateLimit: false`: health, readiness, metrics). It runs in `preValidation`,
 * after caller authentication (it is keyed by the caller) and before the route's schemas, so a
 * malformed request counts as much as a good one. Every limited answer says `x-ratelimit-limit` (the
 * window's requests), `x-ratelimit-remaining` and `x-ratelimit-reset` (whole seconds until the window
 * ends); beyond the limit a 429 problem with `retry-after` as well. A refused request still counts, and
 * does not extend the window.
 *
 * This replaces @fastify/rate-limit (its local store, with the same windows, counts, bound of 5,000
 * tracked keys with the least recently used forgotten first, headers and 429): its hook is an async
 * function that awaits the key and then a promise around the store's callback, so each request paid for
 * three promises and the hook's resolution through fastify's promise path - measured at 1.5-2 us of a
 * background token's ~27 us cache hit (perf profile of bench/http.ts; its own code was 0.8 us). Here the
 * hook is a callback and the count a Map read and write.
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

export const registerRateLimit = (app: FastifyInstance, limits: Config["server"]["rateLimit"]) => {
  const max = Math.trunc(limits.max)
  const windowMs = Math.trunc(Duration.toMillis(limits.timeWindow))
  const limit = String(max)
  // insertion order is recency: a key read is moved to the end, the first one is the least recently used
  const windows = new Map<string, Window>()

  const hook = (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => {
    const key = request.caller === null ? `ip:${request.ip}` : `caller:${request.caller.id}`
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
      void reply.header("x-ratelimit-reset", String(reset))
      return done()
    }
    void reply.header("x-ratelimit-remaining", "0")
    void reply.header("x-ratelimit-reset", String(reset))
    done(
      httpProblem(
        429,
        "rate_limited",
        "Too many requests",
        `Rate limit of ${max} requests exceeded; retry after ${spoken(reset * 1000)}`,
        { headers: { "retry-after": String(Math.max(1, reset)) } }
      )
    )
  }

  // route-level hooks run after the application's, so caller authentication comes first
  // (a GET route's HEAD twin arrives with the GET route's hooks: it is counted once too)
  app.addHook("onRoute", (route) => {
    if (route.config?.rateLimit === false) return
    const preValidation = route.preValidation
    if (preValidation === undefined) route.preValidation = [hook]
    else if (!Array.isArray(preValidation)) {
      if (preValidation !== hook) route.preValidation = [preValidation, hook]
    } else if (!preValidation.includes(hook)) route.preValidation = [...preValidation, hook]
  })
}
