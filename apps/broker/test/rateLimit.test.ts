/**
 * The rate limit's answer headers, as callers and operators read them: on every limited route,
 * `x-ratelimit-limit` (the requests a window allows), `x-ratelimit-remaining` (what is left of it for
 * this caller, or this address before authentication) and `x-ratelimit-reset` (whole seconds until the
 * window ends); at the limit a 429 problem with the same headers and `retry-after`. One budget per
 * caller across every limited route; a request that fails authentication neither counts nor carries them;
 * health checks are not limited.
 */
import { describe, expect, it } from "vitest"
import {
  ACCESS_TOKEN_TYPE,
  basic,
  CALLERS,
  type CallerSpec,
  connectWithToken,
  type Stack,
  startStack,
  TOKEN_EXCHANGE,
  userToken
} from "./support/stack.js"

const RATE_HEADERS = ["x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"] as const

interface Answer {
  readonly status: number
  readonly headers: Headers
  readonly body: string
}

const send = async (
  stack: Stack,
  method: string,
  path: string,
  init: { caller?: CallerSpec; headers?: Record<string, string>; body?: string } = {}
): Promise<Answer> => {
  const headers: Record<string, string> = { ...init.headers }
  if (init.caller !== undefined) headers.authorization = basic(init.caller)
  const response = await fetch(`${stack.url}${path}`, {
    method,
    headers,
    ...(init.body === undefined ? {} : { body: init.body })
  })
  return { status: response.status, headers: response.headers, body: await response.text() }
}

/** The three rate-limit headers of an answer, as numbers (NaN where one is missing). */
const limits = (answer: Answer) => ({
  limit: Number(answer.headers.get("x-ratelimit-limit") ?? Number.NaN),
  remaining: Number(answer.headers.get("x-ratelimit-remaining") ?? Number.NaN),
  reset: Number(answer.headers.get("x-ratelimit-reset") ?? Number.NaN)
})

const exchangeForm = (subjectToken: string, extra: Record<string, string> = {}) =>
  new URLSearchParams({
    grant_type: TOKEN_EXCHANGE,
    subject_token: subjectToken,
    subject_token_type: ACCESS_TOKEN_TYPE,
    audience: "notes",
    ...extra
  }).toString()

const FORM = { "content-type": "application/x-www-form-urlencoded" }

describe("the rate limit's headers", () => {
  it("every limited answer names the limit, what remains of the caller's budget and the seconds to the window's end", async () => {
    const stack = await startStack({ backend: "memory", rateLimit: { max: 50, timeWindow: "1 minute" } })
    try {
      const { subject } = await connectWithToken(stack)
      const subjectToken = await userToken(stack.idp)
      const tokenPath = `/v1/grants/${subject}/notes/token`
      // one budget for the agent across routes and answers: a hit, the grants list, an exchange with Basic
      // credentials and with form credentials, a refusal of the route's own checks
      const answers = [
        await send(stack, "POST", tokenPath, { caller: CALLERS.agent }),
        await send(stack, "GET", "/v1/grants", { caller: CALLERS.agent }),
        await send(stack, "POST", "/oauth/token", {
          caller: CALLERS.agent,
          headers: FORM,
          body: exchangeForm(subjectToken)
        }),
        await send(stack, "POST", "/oauth/token", {
          headers: FORM,
          body: exchangeForm(subjectToken, {
            client_id: CALLERS.agent.id,
            client_secret: CALLERS.agent.secret
          })
        }),
        await send(stack, "POST", tokenPath, {
          caller: CALLERS.agent,
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ scopes: 5 })
        })
      ]
      expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200, 400])
      const seen = answers.map(limits)
      const first = seen[0]?.remaining ?? Number.NaN
      expect(first).toBeLessThan(50)
      expect(seen.map((s) => s.limit)).toEqual([50, 50, 50, 50, 50])
      expect(seen.map((s) => s.remaining)).toEqual([first, first - 1, first - 2, first - 3, first - 4])
      for (const [index, { reset }] of seen.entries()) {
        expect(Number.isInteger(reset)).toBe(true)
        expect(reset).toBeGreaterThanOrEqual(1)
        expect(reset).toBeLessThanOrEqual(seen[index - 1]?.reset ?? 60)
      }
      for (const answer of answers)
        expect(answer.headers.get("x-ratelimit-limit"), "sent once, as one value").toBe("50")

      // another caller has a budget of its own, and a new window is the whole window
      const reader = limits(await send(stack, "GET", "/v1/grants", { caller: CALLERS.reader }))
      expect(reader).toEqual({ limit: 50, remaining: 49, reset: 60 })

      // a failed authentication carries no rate-limit header and does not count
      const wrong = await send(stack, "POST", tokenPath, {
        caller: { id: CALLERS.agent.id, secret: `${CALLERS.agent.secret}x` }
      })
      expect(wrong.status).toBe(401)
      for (const name of RATE_HEADERS) expect(wrong.headers.get(name)).toBeNull()
      const after = limits(await send(stack, "POST", tokenPath, { caller: CALLERS.agent }))
      expect(after.remaining).toBe(first - 5)

      // before authentication (a route without a caller), the budget is the client address's
      const document = [await send(stack, "GET", "/openapi.json"), await send(stack, "GET", "/openapi.json")]
      expect(document.map((a) => a.status)).toEqual([200, 200])
      const [one, two] = document.map(limits)
      expect(one?.limit).toBe(50)
      expect(two?.remaining).toBe((one?.remaining ?? Number.NaN) - 1)

      // a GET route's HEAD counts once, like its GET
      const heads = [await send(stack, "HEAD", "/v1/grants", { caller: CALLERS.agent })]
      heads.push(await send(stack, "HEAD", "/v1/grants", { caller: CALLERS.agent }))
      expect(heads.map((a) => a.status)).toEqual([200, 200])
      expect(limits(heads[1] as Answer).remaining).toBe(limits(heads[0] as Answer).remaining - 1)
      expect(limits(heads[0] as Answer).remaining).toBe(first - 6)

      // an unknown route is not limited
      const unknown = await send(stack, "GET", "/v1/nothing-here", { caller: CALLERS.agent })
      expect(unknown.status).toBe(404)
      for (const name of RATE_HEADERS) expect(unknown.headers.get(name)).toBeNull()

      // health checks are not limited
      for (const path of ["/healthz", "/readyz"]) {
        const health = await send(stack, "GET", path)
        expect(health.status).toBe(200)
        for (const name of RATE_HEADERS) expect(health.headers.get(name)).toBeNull()
      }
    } finally {
      await stack.stop()
    }
  })

  it("at the limit: 429 with the limit, nothing remaining, the reset and retry-after; the window is not extended", async () => {
    const stack = await startStack({ backend: "memory", rateLimit: { max: 3, timeWindow: "1 minute" } })
    try {
      const answers: Array<Answer> = []
      for (let i = 0; i < 5; i++)
        answers.push(await send(stack, "GET", "/v1/grants", { caller: CALLERS.reader }))
      expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 429, 429])
      const seen = answers.map(limits)
      expect(seen.map((s) => s.limit)).toEqual([3, 3, 3, 3, 3])
      expect(seen.map((s) => s.remaining)).toEqual([2, 1, 0, 0, 0])
      expect(seen[0]?.reset).toBe(60)
      for (const [index, { reset }] of seen.entries()) {
        expect(reset).toBeGreaterThanOrEqual(1)
        expect(reset).toBeLessThanOrEqual(seen[index - 1]?.reset ?? 60)
      }
      for (const [index, answer] of answers.entries()) {
        const retryAfter = answer.headers.get("retry-after")
        if (answer.status === 200) expect(retryAfter).toBeNull()
        else {
          expect(answer.headers.get("content-type")).toMatch(/^application\/problem\+json/)
          expect(JSON.parse(answer.body)).toMatchObject({ status: 429, code: "rate_limited" })
          expect(JSON.parse(answer.body).detail).toMatch(
            /^Rate limit of 3 requests exceeded; retry after (1 minute|\d+ seconds?)$/
          )
          expect(Number(retryAfter)).toBe(seen[index]?.reset)
        }
      }
      // the limited caller's budget is its own
      const agent = await send(stack, "GET", "/v1/grants", { caller: CALLERS.agent })
      expect(agent.status).toBe(200)
      expect(limits(agent)).toEqual({ limit: 3, remaining: 2, reset: 60 })
      // health checks are never limited, beyond the limit too
      for (let i = 0; i < 5; i++) expect((await send(stack, "GET", "/healthz")).status).toBe(200)
    } finally {
      await stack.stop()
    }
  })
})
