/**
 * The rate limit tracks at most `MAX_TRACKED_KEYS` callers and client addresses at once; beyond, the least
 * recently seen one is forgotten (its next request starts a new window), never one seen more recently.
 * The check is called as the server's hook calls it, with a request's caller or address and a reply that
 * collects the headers.
 */
import type { CallerPolicy } from "@token-broker/config"
import { Duration } from "effect"
import type { FastifyReply, FastifyRequest } from "fastify"
import { describe, expect, it } from "vitest"
import { MAX_TRACKED_KEYS, makeRateLimit } from "../src/RateLimit.js"

const from = (key: string | CallerPolicy) =>
  (typeof key === "string"
    ? { caller: null, ip: key }
    : { caller: key, ip: "10.9.9.9" }) as unknown as FastifyRequest

const answer = () => {
  const headers: Record<string, string> = {}
  const reply = {
    header(name: string, value: string) {
      headers[name] = value
      return reply
    }
  }
  return { reply: reply as unknown as FastifyReply, headers }
}

describe("the rate limit's bound on tracked keys", () => {
  const limit = () => makeRateLimit({ max: 1, timeWindow: Duration.minutes(1) })
  const check = (rateLimit: ReturnType<typeof limit>, key: string | CallerPolicy) => {
    const { reply, headers } = answer()
    const refused = rateLimit(from(key), reply)
    return { refused: refused !== undefined, remaining: headers["x-ratelimit-remaining"] }
  }

  it("forgets the least recently seen key first, and only once the bound is reached", () => {
    const rateLimit = limit()
    expect(check(rateLimit, "10.0.0.1")).toEqual({ refused: false, remaining: "0" })
    // up to the bound, every key is still tracked: 10.0.0.1 is still over its limit
    for (let n = 0; n < MAX_TRACKED_KEYS - 1; n++) check(rateLimit, `10.1.${n >> 8}.${n & 255}`)
    expect(check(rateLimit, "10.0.0.1")).toEqual({ refused: true, remaining: "0" })
    // 10.0.0.1 was just seen: one more key forgets the oldest of the others, not it
    check(rateLimit, "10.2.0.0")
    expect(check(rateLimit, "10.0.0.1").refused).toBe(true)
    // the first of the flood was forgotten (its next request starts a new window), the second was not
    expect(check(rateLimit, "10.1.0.1").refused).toBe(true)
    expect(check(rateLimit, "10.1.0.0")).toEqual({ refused: false, remaining: "0" })
    // a flood of new addresses makes 10.0.0.1 the least recently seen, and it is forgotten
    for (let n = 0; n < MAX_TRACKED_KEYS; n++) check(rateLimit, `10.3.${n >> 8}.${n & 255}`)
    expect(check(rateLimit, "10.0.0.1")).toEqual({ refused: false, remaining: "0" })
  })

  it("a caller has one budget whatever address it comes from, apart from the addresses' and other callers'", () => {
    const rateLimit = limit()
    const caller = { id: "agent" } as CallerPolicy
    expect(check(rateLimit, caller).refused).toBe(false)
    expect(check(rateLimit, caller).refused).toBe(true)
    expect(check(rateLimit, "10.9.9.9").refused).toBe(false)
    expect(check(rateLimit, { id: "reader" } as CallerPolicy).refused).toBe(false)
  })
})
