import type { FastifySchemaCompiler } from "fastify"
import { validatorCompiler } from "fastify-type-provider-zod"
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

/** A request part taken as it is (`{ value }`), or undefined: zod validates it. */
type Precheck = (data: unknown) => { readonly value: unknown } | undefined

/**
 * zod's validator behind precompiled checks per request part: data a check passes is taken as zod would
 * answer it, anything else goes to zod, which names the problem. zod on a background token's path and
 * empty body was 2.5-3.7 us of its cache hit (bench/http.ts with BENCH_PROFILE).
 */
export const prechecked =
  <S>(checks: Readonly<Partial<Record<"params" | "body", Precheck>>>): FastifySchemaCompiler<S> =>
  (route) => {
    // fastify types a route's compiler by the route's whole schema, and calls it with each part's (zod's)
    const zod = validatorCompiler(route as unknown as Parameters<typeof validatorCompiler>[0])
    const check =
      route.httpPart === "params" || route.httpPart === "body" ? checks[route.httpPart] : undefined
    return check === undefined ? zod : (data) => check(data) ?? zod(data)
  }
