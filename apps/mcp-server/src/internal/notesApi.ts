import { requestWithDeadline } from "@token-broker/core"
import { Data, Effect, Redacted } from "effect"
import { Agent } from "undici"
import { z } from "zod"

/** A note as the Nextcloud Notes API v1 (and dev-idp's stand-in) returns it. */
export const NoteSchema = z.object({
  id: z.number().int(),
  etag: z.string(),
  readonly: z.boolean(),
  title: z.string(),
  content: z.string(),
  category: z.string(),
  favorite: z.boolean(),
  modified: z.number()
})
export type Note = z.output<typeof NoteSchema>

/**
 * A note exactly as `NoteSchema` outputs it, checked in place (undefined: let zod decide). zod's parse
 * of a 20-note list was the largest part of the notes call's own CPU in the server's profile; this
 * accepts only what the schema accepts, and gives what it gives: a new object with the schema's fields
 * (unknown ones dropped), `id` a safe integer, `modified` a finite number.
 */
export const plainNote = (value: unknown): Note | undefined => {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined
  const { id, etag, readonly, title, content, category, favorite, modified } = value as Record<
    string,
    unknown
  >
  return typeof id === "number" &&
    Number.isSafeInteger(id) &&
    typeof etag === "string" &&
    typeof readonly === "boolean" &&
    typeof title === "string" &&
    typeof content === "string" &&
    typeof category === "string" &&
    typeof favorite === "boolean" &&
    typeof modified === "number" &&
    Number.isFinite(modified)
    ? { id, etag, readonly, title, content, category, favorite, modified }
    : undefined
}

const NoteListSchema = z.array(NoteSchema)

/** A list of notes, checked in place where each is plain (`plainNote`), else by zod: what zod gives. */
export const parseNoteList = (value: unknown): { readonly value: Array<Note> } | undefined => {
  if (Array.isArray(value)) {
    const notes: Array<Note> = []
    for (const item of value) {
      const note = plainNote(item)
      if (note === undefined) break
      notes.push(note)
    }
    if (notes.length === value.length) return { value: notes }
  }
  const parsed = NoteListSchema.safeParse(value)
  return parsed.success ? { value: parsed.data } : undefined
}
/** What a request makes of an answer's JSON: its value, or undefined when the answer is not understood. */
type Parse<A> = (json: unknown) => { readonly value: A } | undefined
const viaZod =
  <S extends z.ZodType>(schema: S): Parse<z.output<S>> =>
  (json) => {
    const parsed = schema.safeParse(json)
    return parsed.success ? { value: parsed.data } : undefined
  }
const parseNote = viaZod(NoteSchema)
const parseAnything = viaZod(z.unknown())

/** The notes API answered with an error, or could not be reached. The message says why, in plain words. */
export class NotesApiError extends Data.TaggedError("NotesApiError")<{
  /** HTTP status; 0 when no answer arrived. */
  readonly status: number
  /** `unauthorized`, `forbidden`, `not_found`, `conflict`, `unavailable`, `invalid_response`, `rejected`. */
  readonly reason:
    | "unauthorized"
    | "forbidden"
    | "not_found"
    | "conflict"
    | "unavailable"
    | "invalid_response"
    | "rejected"
  /** The OAuth error of a `WWW-Authenticate` answer (`invalid_token`, `insufficient_scope`), when given. */
  readonly oauthError?: string | undefined
  /** For 412: the note as it is now. */
  readonly current?: Note | undefined
  readonly message: string
}> {
  readonly code = "notes_api_error" as const
}

export interface NotesApiOptions {
  /** e.g. `https://cloud.example.com/index.php/apps/notes/api/v1` (no trailing slash). */
  readonly baseUrl: string
  /** Timeout of one request. */
  readonly timeoutMs?: number | undefined
}

const authParam = (header: string | undefined, name: string): string | undefined => {
  if (header === undefined) return undefined
  const match = new RegExp(`${name}="([^"]*)"`).exec(header)
  return match?.[1]
}

/**
 * A small client of the notes API v1 (Nextcloud Notes): every answer is validated; the upstream token
 * is an argument of each call (a brokered token with only the scopes of that call).
 */
export const makeNotesApi = (options: NotesApiOptions) => {
  const timeoutMs = options.timeoutMs ?? 10_000
  // One kept-alive pool for the process: undici's own request API writes a string body with its
  // headers and answers without WHATWG Request/Response or web streams, which `fetch` costs per call.
  const dispatcher = new Agent({ keepAliveTimeout: 30_000 })
  // the API's origin and path, parsed once: each request names its origin and path to the pool itself
  const base = new URL(options.baseUrl)
  const basePath = base.pathname.replace(/\/+$/, "")

  const request = <A>(
    token: Redacted.Redacted<string>,
    method: "GET" | "POST" | "PUT" | "DELETE",
    path: string,
    parse: Parse<A>,
    body?: unknown,
    headers: Record<string, string> = {}
  ): Effect.Effect<A, NotesApiError> => {
    const send = requestWithDeadline(
      timeoutMs,
      async (signal) => {
        const answer = await dispatcher.request({
          origin: base.origin,
          path: `${basePath}${path}`,
          method,
          headers: {
            accept: "application/json",
            authorization: `Bearer ${Redacted.value(token)}`,
            ...(body === undefined ? {} : { "content-type": "application/json" }),
            ...headers
          },
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
          signal
        })
        const text = await answer.body.text().catch(() => "")
        const challenge = answer.headers["www-authenticate"]
        return {
          status: answer.statusCode,
          wwwAuthenticate: Array.isArray(challenge) ? challenge.join(", ") : challenge,
          text
        }
      },
      (cause) => {
        const timedOut = cause instanceof Error && cause.name === "TimeoutError"
        return {
          timedOut,
          error: new NotesApiError({
            status: 0,
            reason: "unavailable",
            message: timedOut
              ? `The notes API did not answer within ${timeoutMs / 1000} s`
              : "The notes API could not be reached"
          })
        }
      }
    )
    // A read that failed before any answer (a pooled connection the server had closed, e.g. after it
    // refused an upload) is sent once more on a fresh connection; writes are never repeated.
    const sent =
      method === "GET"
        ? Effect.catchIf(
            send,
            (failure) => !failure.timedOut,
            () => send
          )
        : send
    return Effect.flatMap(
      Effect.mapError(sent, (failure) => failure.error),
      (response): Effect.Effect<A, NotesApiError> => {
        let json: unknown
        try {
          json = response.text.length === 0 ? undefined : JSON.parse(response.text)
        } catch {
          json = undefined
        }
        if (response.status < 200 || response.status > 299) return Effect.fail(errorOf(response, json))
        const parsed = parse(json)
        if (parsed === undefined) {
          return Effect.fail(
            new NotesApiError({
              status: response.status,
              reason: "invalid_response",
              message: `The notes API answered ${method} ${path} with a body this server does not understand`
            })
          )
        }
        return Effect.succeed(parsed.value)
      }
    )
  }

  const errorOf = (
    response: { readonly status: number; readonly wwwAuthenticate: string | undefined },
    json: unknown
  ): NotesApiError => {
    const wwwAuthenticate = response.wwwAuthenticate
    const oauthError = authParam(wwwAuthenticate, "error")
    const description = authParam(wwwAuthenticate, "error_description")
    const detail = description === undefined ? "" : ` (${description})`
    switch (response.status) {
      case 401:
        return new NotesApiError({
          status: 401,
          reason: "unauthorized",
          oauthError,
          message: `The notes API refused the access token: ${oauthError ?? "unauthorized"}${detail}`
        })
      case 403: {
        const scope = authParam(wwwAuthenticate, "scope")
        return new NotesApiError({
          status: 403,
          reason: "forbidden",
          oauthError,
          message:
            oauthError === "insufficient_scope"
              ? `The notes API needs the scope "${scope ?? "?"}", which the grant does not carry`
              : `The notes API forbids this${detail}`
        })
      }
      case 404:
        return new NotesApiError({ status: 404, reason: "not_found", message: "No such note" })
      case 413:
        return new NotesApiError({
          status: 413,
          reason: "rejected",
          message: "The notes API refused the note as too large: shorten its content"
        })
      case 412: {
        const current = NoteSchema.safeParse(json)
        return new NotesApiError({
          status: 412,
          reason: "conflict",
          current: current.success ? current.data : undefined,
          message: "The note was changed since the given etag; read it again and retry with its current etag"
        })
      }
      default:
        return new NotesApiError({
          status: response.status,
          reason: response.status >= 500 || response.status === 429 ? "unavailable" : "rejected",
          message: `The notes API answered ${response.status}${response.status >= 500 ? ": try again later" : ""}`
        })
    }
  }

  const noteQuery = (category: string | undefined) =>
    category === undefined ? "" : `?${new URLSearchParams({ category }).toString()}`

  return {
    /** Closes the pool's connections (when the server closes). */
    close: (): Promise<void> => dispatcher.close(),
    list: (token: Redacted.Redacted<string>, filter: { readonly category?: string | undefined }) =>
      request(token, "GET", `/notes${noteQuery(filter.category)}`, parseNoteList),
    get: (token: Redacted.Redacted<string>, id: number) => request(token, "GET", `/notes/${id}`, parseNote),
    create: (token: Redacted.Redacted<string>, note: NoteInput) =>
      request(token, "POST", "/notes", parseNote, note),
    update: (token: Redacted.Redacted<string>, id: number, note: NoteInput, etag: string | undefined) =>
      request(
        token,
        "PUT",
        `/notes/${id}`,
        parseNote,
        note,
        etag === undefined ? {} : { "if-match": `"${etag}"` }
      ),
    remove: (token: Redacted.Redacted<string>, id: number) =>
      request(token, "DELETE", `/notes/${id}`, parseAnything)
  }
}

export interface NoteInput {
  readonly title?: string | undefined
  readonly content?: string | undefined
  readonly category?: string | undefined
  readonly favorite?: boolean | undefined
}

export type NotesApi = ReturnType<typeof makeNotesApi>
