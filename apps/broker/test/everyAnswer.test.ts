/**
 * What every answer of the broker carries, whichever way it was made - a route's own answer, a refusal
 * of caller authentication, of the rate limit or of a schema, a body fastify could not parse, an unknown
 * route, a URL it could not decode: an `x-request-id` (the caller's own when well-formed), and one count
 * in `http_requests_total` and the duration histogram under its route pattern ("unmatched" for an
 * unknown route) and status. Pins the server's front door: caller authentication and the rate limit in
 * one hook, the request id set in `onSend`, the metrics counted as fastify logs a request as completed.
 */
import { describe, expect, it } from "vitest"
import { basic, CALLERS, connectWithToken, startStack } from "./support/stack.js"

/** The value of one series of the scrape (0 where it is absent). */
const series = (text: string, name: string, labels: string) => {
  const line = text.split("\n").find((l) => l.startsWith(`${name}{${labels}} `))
  return line === undefined ? 0 : Number(line.split(" ").at(-1))
}

describe("every answer", () => {
  it("carries a request id and is counted once under its route and status", async () => {
    const stack = await startStack({ backend: "memory", rateLimit: { max: 12, timeWindow: "1 minute" } })
    try {
      const { subject } = await connectWithToken(stack)
      const tokenRoute = "/v1/grants/:subject/:provider/token"
      const tokenPath = `/v1/grants/${subject}/notes/token`
      const agent = { authorization: basic(CALLERS.agent) }
      const json = { ...agent, "content-type": "application/json" }
      const requests: ReadonlyArray<{
        readonly what: string
        readonly method: string
        readonly path: string
        readonly headers?: Record<string, string>
        readonly body?: string
        readonly status: number
        readonly route: string
      }> = [
        {
          what: "a cache hit",
          method: "POST",
          path: tokenPath,
          headers: agent,
          status: 200,
          route: tokenRoute
        },
        { what: "no credentials", method: "POST", path: tokenPath, status: 401, route: tokenRoute },
        {
          what: "a body that is not JSON",
          method: "POST",
          path: tokenPath,
          headers: json,
          body: "{",
          status: 400,
          route: tokenRoute
        },
        {
          what: "a schema refusal",
          method: "POST",
          path: tokenPath,
          headers: json,
          body: JSON.stringify({ scopes: 5 }),
          status: 400,
          route: tokenRoute
        },
        {
          what: "an unknown route",
          method: "GET",
          path: "/v1/nothing-here",
          headers: agent,
          status: 404,
          route: "unmatched"
        },
        { what: "a health check", method: "GET", path: "/healthz", status: 200, route: "/healthz" }
      ]
      const before = await (await fetch(`${stack.url}/metrics`)).text()
      for (const request of requests) {
        const answer = await fetch(`${stack.url}${request.path}`, {
          method: request.method,
          headers: request.headers ?? {},
          ...(request.body === undefined ? {} : { body: request.body })
        })
        await answer.text()
        expect(answer.status, request.what).toBe(request.status)
        expect(answer.headers.get("x-request-id"), request.what).toMatch(/^[0-9a-f-]{36}$/)
      }
      // the caller's own request id comes back; beyond the limit a 429 carries one too
      const traced = await fetch(`${stack.url}${tokenPath}`, {
        method: "POST",
        headers: { ...agent, "x-request-id": "trace-42" }
      })
      expect(traced.headers.get("x-request-id")).toBe("trace-42")
      const remaining = Number(traced.headers.get("x-ratelimit-remaining"))
      expect(remaining).toBeGreaterThanOrEqual(0)
      const statuses: Array<number> = []
      for (let i = 0; i < remaining + 2; i++) {
        const answer = await fetch(`${stack.url}${tokenPath}`, { method: "POST", headers: agent })
        statuses.push(answer.status)
        expect(answer.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/)
      }
      // what remains of the window, then 429s
      expect(statuses).toEqual([...Array.from({ length: remaining }, () => 200), 429, 429])
      const badUrl = await fetch(`${stack.url}/v1/grants/%E0%A4%A/notes/token`, { method: "POST" })
      expect(badUrl.status).toBe(400)
      expect(badUrl.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/)

      const after = await (await fetch(`${stack.url}/metrics`)).text()
      const grew = (route: string, method: string, status: number) => {
        const labels = `method="${method}",route="${route}",status_code="${status}"`
        return {
          requests:
            series(after, "http_requests_total", labels) - series(before, "http_requests_total", labels),
          durations:
            series(after, "http_request_duration_seconds_count", labels) -
            series(before, "http_request_duration_seconds_count", labels)
        }
      }
      expect(grew(tokenRoute, "POST", 200)).toEqual({ requests: 2 + remaining, durations: 2 + remaining })
      expect(grew(tokenRoute, "POST", 401)).toEqual({ requests: 1, durations: 1 })
      expect(grew(tokenRoute, "POST", 400)).toEqual({ requests: 2, durations: 2 })
      expect(grew(tokenRoute, "POST", 429)).toEqual({ requests: 2, durations: 2 })
      expect(grew("unmatched", "GET", 404)).toEqual({ requests: 1, durations: 1 })
      expect(grew("/healthz", "GET", 200)).toEqual({ requests: 1, durations: 1 })
      expect(grew("unmatched", "POST", 400)).toEqual({ requests: 1, durations: 1 })
    } finally {
      await stack.stop()
    }
  })
})
