import { z } from "zod"
import { ProblemResponse } from "../Schemas.js"

/**
 * Refusals as the API document lists them. Their bodies are written by Replies.ts (already serialized),
 * so these entries describe them and never serialize them.
 */
export const problem = (description: string) => ({
  description,
  content: { "application/problem+json": { schema: ProblemResponse } }
})

/** The refusals every caller route can answer. */
export const callerProblems = {
  400: problem("Invalid request: the problem names the field"),
  401: problem("Client authentication failed or is missing"),
  403: problem("The caller's policy does not allow this (reason says which part)"),
  429: problem("Rate limit of this caller exceeded; see Retry-After")
}

/** An answer that is a page or text, not JSON. */
export const text = (type: "text/html" | "text/plain", description: string) => ({
  description,
  content: { [type]: { schema: z.string() } }
})

/** Routes a registered caller must authenticate to; errors as RFC 9457 problems. */
export const callerRoute = { auth: "caller", errors: "problem" } as const

/**
 * A hot path's answer written with plain JSON.stringify: its shape is checked against the answer schema
 * when compiling (ZodTypeProvider types the handler's return), and checking it again with zod on every
 * answer cost about 5 us of the background token's ~75 us per cache hit (CPU profile of
 * fastify.inject), and 13 us per cached token exchange (bench/http.ts with BENCH_PROFILE).
 */
export const plainJson = () => (data: unknown) => JSON.stringify(data)
