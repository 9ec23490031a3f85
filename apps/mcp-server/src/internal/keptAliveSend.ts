import type { BrokerClient } from "@token-broker/client"
import { type Agent, request } from "undici"

/**
 * The broker client's `send` over undici's request API on one kept-alive pool. Kept instead of a
 * `fetch` because that cost each tool call a WHATWG Request, an AbortSignal cloned across it
 * (`makeTransferable`), a string body turned into a stream and written apart from its headers, and web
 * streams for the answer: about a tenth of the MCP server's CPU per `tools/call` in its profile; a
 * `fetch` made of undici's request still built a Response and its Headers and read the body through web
 * streams. It sends what the client sends (a string body, a header record) and answers the status, the
 * whole text and the Retry-After header.
 */
export const makeKeptAliveSend =
  (dispatcher: Agent): NonNullable<BrokerClient.BrokerClientOptions["send"]> =>
  async (input) => {
    const answer = await request(input.url, {
      method: input.method as "GET",
      headers: input.headers,
      ...(input.body === undefined ? {} : { body: input.body }),
      signal: input.signal,
      dispatcher
    })
    const text = await answer.body.text()
    const retryAfter = answer.headers["retry-after"]
    return {
      status: answer.statusCode,
      text,
      retryAfter: Array.isArray(retryAfter) ? retryAfter[0] : retryAfter
    }
  }
