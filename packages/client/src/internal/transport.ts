import { requestWithDeadline, UpstreamUnavailable } from "@token-broker/core"
import { Duration, Effect, Redacted } from "effect"
import type { z } from "zod"
import type {
  BrokerClientOptions,
  BrokerHttpAnswer,
  BrokerHttpRequest,
  ClientError
} from "../BrokerClient.js"
import { BrokerRequestError } from "../BrokerRequestError.js"
import { coreErrorOf, type ErrorContext, firstString } from "./errors.js"

/**
 * The client's HTTP: one request with the caller's Basic credentials and a time budget, the answer
 * decoded with its schema, and a refusal turned back into core's error (by `code`) or the broker's own.
 */
export interface Answer {
  readonly status: number
  readonly body: Readonly<Record<string, unknown>>
  readonly retryAfter: Duration.Duration | undefined
}

export type RequestBody = { readonly json: unknown } | { readonly form: URLSearchParams }

/** `BrokerClientOptions.send` over a `fetch`: the answer's status, its whole text and its Retry-After. */
const sendByFetch =
  (doFetch: typeof fetch) =>
  async (request: BrokerHttpRequest): Promise<BrokerHttpAnswer> => {
    const response = await doFetch(request.url, {
      method: request.method,
      headers: request.headers,
      ...(request.body === undefined ? {} : { body: request.body }),
      signal: request.signal
    })
    const text = await response.text()
    return { status: response.status, text, retryAfter: response.headers.get("retry-after") ?? undefined }
  }

export const makeTransport = (options: BrokerClientOptions) => {
  const base = options.url.replace(/\/+$/, "")
  const secret =
    typeof options.clientSecret === "string" ? options.clientSecret : Redacted.value(options.clientSecret)
  const encode = (text: string) => encodeURIComponent(text).replace(/%20/g, "+")
  const authorization = `Basic ${Buffer.from(`${encode(options.clientId)}:${encode(secret)}`).toString("base64")}`
  const timeoutMs = Duration.toMillis(options.timeout ?? "10 seconds")
  const send = options.send ?? sendByFetch(options.fetch ?? fetch)

  /** One request; an unreachable broker is UpstreamUnavailable (retryable), never a defect. */
  const request = (
    method: string,
    path: string,
    context: ErrorContext,
    body?: RequestBody
  ): Effect.Effect<Answer, UpstreamUnavailable> =>
    Effect.map(
      requestWithDeadline(
        timeoutMs,
        (signal) => {
          const headers: Record<string, string> = { authorization, accept: "application/json" }
          let payload: string | undefined
          if (body !== undefined && "json" in body) {
            headers["content-type"] = "application/json"
            payload = JSON.stringify(body.json)
          } else if (body !== undefined) {
            headers["content-type"] = "application/x-www-form-urlencoded"
            payload = body.form.toString()
          }
          return send({ url: `${base}${path}`, method, headers, body: payload, signal })
        },
        (cause) =>
          new UpstreamUnavailable({
            provider: context.provider ?? "broker",
            reason: cause instanceof Error && cause.name === "TimeoutError" ? "timeout" : "network",
            message: `The token broker at ${base} could not be reached`
          })
      ),
      (answer): Answer => {
        let parsed: unknown = {}
        try {
          parsed = answer.text.length === 0 ? {} : JSON.parse(answer.text)
        } catch {
          parsed = {}
        }
        const retrySeconds = answer.retryAfter === undefined ? Number.NaN : Number(answer.retryAfter)
        return {
          status: answer.status,
          body: (typeof parsed === "object" && parsed !== null ? parsed : {}) as Record<string, unknown>,
          retryAfter: Number.isFinite(retrySeconds) ? Duration.seconds(retrySeconds) : undefined
        }
      }
    )

  /** A non-2xx answer: core's error by `code`, else the broker's own refusal. */
  const failure = (answer: Answer, context: ErrorContext): ClientError => {
    const core = coreErrorOf(answer.body, context)
    if (core !== undefined) return core
    return new BrokerRequestError({
      status: answer.status,
      code: firstString(answer.body, "code", "error") ?? `http_${answer.status}`,
      message: firstString(answer.body, "detail", "error_description") ?? `HTTP ${answer.status}`,
      reason: firstString(answer.body, "reason"),
      retryAfter: answer.retryAfter
    })
  }

  const decode = <S extends z.ZodType>(
    schema: S,
    answer: Answer
  ): Effect.Effect<z.output<S>, BrokerRequestError> => {
    const parsed = schema.safeParse(answer.body)
    return parsed.success
      ? Effect.succeed(parsed.data)
      : Effect.fail(
          new BrokerRequestError({
            status: answer.status,
            code: "invalid_response",
            message: "The broker's answer does not have the expected shape"
          })
        )
  }

  const call = <S extends z.ZodType>(
    schema: S,
    method: string,
    path: string,
    context: ErrorContext,
    body?: RequestBody
  ): Effect.Effect<z.output<S>, ClientError> =>
    Effect.flatMap(request(method, path, context, body), (answer) =>
      answer.status >= 200 && answer.status < 300
        ? decode(schema, answer)
        : Effect.fail(failure(answer, context))
    )

  return { request, failure, decode, call }
}
