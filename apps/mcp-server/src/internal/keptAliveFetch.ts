import { type Agent, request } from "undici"

/** Statuses whose answer has no body (`new Response` refuses one for them). */
const NULL_BODY = new Set([101, 103, 204, 205, 304])

/** The client sends a plain record; anything else goes through `Headers`. */
const headerRecord = (headers: RequestInit["headers"]): Record<string, string> =>
  headers === undefined
    ? {}
    : headers instanceof Headers || Array.isArray(headers)
      ? Object.fromEntries(new Headers(headers))
      : (headers as Record<string, string>)

/**
 * A `fetch` for the broker client over undici's request API on one kept-alive pool. Kept instead of the
 * global `fetch` because that cost each tool call a WHATWG Request, an AbortSignal cloned across it
 * (`makeTransferable`), a string body turned into a stream and written apart from its headers, and web
 * streams for the answer: about a tenth of the MCP server's CPU per `tools/call` in its profile. It sends
 * what the client sends (a string body, a header record) and answers with a plain `Response`.
 */
export const makeKeptAliveFetch =
  (dispatcher: Agent): typeof fetch =>
  async (input, init) => {
    const url = typeof input === "string" || input instanceof URL ? input : input.url
    const body = init?.body
    if (body !== undefined && body !== null && typeof body !== "string") {
      throw new TypeError("this fetch sends string bodies only")
    }
    const answer = await request(url, {
      method: (init?.method ?? "GET") as "GET",
      headers: headerRecord(init?.headers),
      ...(body === undefined || body === null ? {} : { body }),
      ...(init?.signal === undefined || init.signal === null ? {} : { signal: init.signal }),
      dispatcher
    })
    const text = await answer.body.text()
    const answerHeaders = new Headers()
    for (const [name, value] of Object.entries(answer.headers)) {
      if (value === undefined) continue
      for (const one of Array.isArray(value) ? value : [value]) answerHeaders.append(name, one)
    }
    return new Response(NULL_BODY.has(answer.statusCode) ? null : text, {
      status: answer.statusCode,
      headers: answerHeaders
    })
  }
