import type { ServerResponse } from "node:http"
import { setTimeout as sleep } from "node:timers/promises"
import type { Fault } from "../Faults.js"
import { sendJson } from "./Http.js"

export const faultBody = (status: number): { error: string; error_description: string } => ({
  error:
    status === 503 || status === 429
      ? "temporarily_unavailable"
      : status >= 500
        ? "server_error"
        : "invalid_request",
  error_description: "fault injected by dev-idp"
})

export const isRecord = (value: unknown): value is Record<string, unknown> =>
  value !== null && typeof value === "object"

/** Answers `res` for a fault on a token request; "continue" lets the provider answer (after a delay). */
export const applyFault = async (
  fault: Fault,
  res: ServerResponse,
  lifetime: AbortSignal
): Promise<"handled" | "continue"> => {
  switch (fault.kind) {
    case "status":
      sendJson(res, fault.status, faultBody(fault.status))
      return "handled"
    case "bare_status":
      if (fault.body === undefined) {
        res.writeHead(fault.status, { "content-length": "0" })
        res.end()
      } else {
        const body = Buffer.from(fault.body)
        res.writeHead(fault.status, {
          "content-type": fault.contentType,
          "content-length": String(body.length)
        })
        res.end(body)
      }
      return "handled"
    case "rate_limit":
      sendJson(res, 429, faultBody(429), { "retry-after": String(fault.retryAfterSeconds) })
      return "handled"
    case "invalid_grant":
      sendJson(res, 400, { error: "invalid_grant", error_description: "fault injected by dev-idp" })
      return "handled"
    case "latency":
      await sleep(fault.ms, undefined, { signal: lifetime })
      return "continue"
    case "hang":
      // Never answer: the connection stays open until the client gives up or dev-idp closes.
      return "handled"
    case "after_commit":
      return "continue"
  }
}

/**
 * Lets the provider answer `res` for real (the rotation commits), then replaces what it would send
 * with the fault's answer. The provider's answer is held at `res.end`, before any byte is sent.
 */
export const answerAfterCommit = (fault: Extract<Fault, { kind: "after_commit" }>, res: ServerResponse) => {
  const end = res.end.bind(res) as (chunk?: unknown) => ServerResponse
  res.end = ((chunk?: unknown) => {
    const text = chunk === undefined || chunk === null ? "" : Buffer.from(chunk as Buffer).toString("utf8")
    const replace = (status: number, body: string) => {
      res.statusCode = status
      res.setHeader("content-type", "application/json; charset=utf-8")
      res.setHeader("content-length", String(Buffer.byteLength(body)))
      return end(body)
    }
    switch (fault.answer) {
      case "status":
        return replace(fault.status, JSON.stringify(faultBody(fault.status)))
      case "json_invalid": {
        let parsed: unknown
        try {
          parsed = JSON.parse(text)
        } catch {
          return end(chunk)
        }
        return isRecord(parsed) && res.statusCode === 200
          ? replace(200, JSON.stringify({ ...parsed, token_type: "x-unknown" }))
          : end(chunk)
      }
      case "non_json":
        return res.statusCode === 200
          ? replace(200, text.slice(0, Math.max(1, text.length >> 1)))
          : end(chunk)
      case "drop":
        res.destroy()
        return res
    }
  }) as typeof res.end
}
