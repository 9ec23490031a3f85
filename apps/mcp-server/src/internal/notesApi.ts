import { Data, Redacted } from "effect"
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

/** A note of a list: the list is asked for without the notes' content (`exclude=content`). */
export const NoteSummarySchema = NoteSchema.omit({ content: true })
export type NoteSummary = z.output<typeof NoteSummarySchema>

/** A note of a list exactly as `NoteSummarySchema` outputs it, checked in place (as `plainNote`). */
export const plainNoteSummary = (value: unknown): NoteSummary | undefined => {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined
  const { id, etag, readonly, title, category, favorite, modified } = value as Record<string, unknown>
  return typeof id === "number" &&
    Number.isSafeInteger(id) &&
    typeof etag === "string" &&
    typeof readonly === "boolean" &&
    typeof title === "string" &&
    typeof category === "string" &&
    typeof favorite === "boolean" &&
    typeof modified === "number" &&
    Number.isFinite(modified)
    ? { id, etag, readonly, title, category, favorite, modified }
    : undefined
}

const NoteListSchema = z.array(NoteSummarySchema)

/**
 * A list of notes, checked in place where each is plain (`plainNoteSummary`), else by zod: what zod
 * gives (a content the API sent anyway is dropped, as any unknown field).
 */
export const parseNoteList = (value: unknown): { readonly value: Array<NoteSummary> } | undefined => {
  if (Array.isArray(value)) {
    const notes: Array<NoteSummary> = []
    for (const item of value) {
      const note = plainNoteSummary(item)
      if (note === undefined) break
      notes.push(note)
    }
    if (notes.length === value.length) return { value: notes }
  }
  const parsed = NoteListSchema.safeParse(value)
  return parsed.success ? { value: parsed.data } : undefined
}
/**
 * What a request makes of an answer's JSON (a 2xx, or a 304 to its `If-None-Match`): its value, or
 * undefined when the answer is not understood.
 */
type Parse<A> = (
  json: unknown,
  answer: { readonly status: number; readonly etag: string | undefined }
) => { readonly value: A } | undefined
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
  /** How many lists (per owner and category) are kept with their entity tag for revalidation. */
  readonly rememberedLists?: number | undefined
}

type Method = "GET" | "POST" | "PUT" | "DELETE"
/** What the API answered: the status, the headers read, the whole body. */
interface Answer {
  readonly status: number
  readonly wwwAuthenticate: string | undefined
  readonly etag: string | undefined
  readonly text: string
}
/** A request that got no answer: timed out, or its connection failed. */
class NoAnswer {
  constructor(readonly timedOut: boolean) {}
}

/** A list as the API last answered it for one owner, with its entity tag. */
interface RememberedList {
  readonly etag: string
  readonly notes: ReadonlyArray<NoteSummary>
}
/** A list longer than this is not kept for revalidation (its memory is the owner's list itself). */
const MAX_REMEMBERED_NOTES = 2_000

const authParam = (header: string | undefined, name: string): string | undefined => {
  if (header === undefined) return undefined
  const match = new RegExp(`${name}="([^"]*)"`).exec(header)
  return match?.[1]
}

/**
 * A small client of the notes API v1 (Nextcloud Notes): every answer is validated; the upstream token
 * is an argument of each call (a brokered token with only the scopes of that call). Its calls are
 * promises, rejected with a `NotesApiError`: a tool call awaits one per call, with no fiber of its own.
 */
export const makeNotesApi = (options: NotesApiOptions) => {
  const timeoutMs = options.timeoutMs ?? 10_000
  // One kept-alive pool for the process: undici's own request API writes a string body with its
  // headers and answers without WHATWG Request/Response or web streams, which `fetch` costs per call.
  const dispatcher = new Agent({ keepAliveTimeout: 30_000 })
  // the API's origin and path, parsed once: each request names its origin and path to the pool itself
  const base = new URL(options.baseUrl)
  const basePath = base.pathname.replace(/\/+$/, "")

  /** One request with its deadline: the answer, or the error of a request that got none. */
  const sendOnce = (
    token: Redacted.Redacted<string>,
    method: Method,
    path: string,
    body: string | undefined,
    headers: Record<string, string>
  ): Promise<Answer> => {
    const controller = new AbortController()
    const timer = setTimeout(
      () => controller.abort(new DOMException("The operation timed out", "TimeoutError")),
      timeoutMs
    )
    timer.unref?.()
    return dispatcher
      .request({
        origin: base.origin,
        path: `${basePath}${path}`,
        method,
        headers: {
          accept: "application/json",
          authorization: `Bearer ${Redacted.value(token)}`,
          ...(body === undefined ? {} : { "content-type": "application/json" }),
          ...headers
        },
        ...(body === undefined ? {} : { body }),
        signal: controller.signal
      })
      .then(async (answer) => {
        const text = await answer.body.text().catch(() => "")
        clearTimeout(timer)
        const challenge = answer.headers["www-authenticate"]
        const etag = answer.headers.etag
        return {
          status: answer.statusCode,
          wwwAuthenticate: Array.isArray(challenge) ? challenge.join(", ") : challenge,
          etag: typeof etag === "string" ? etag : undefined,
          text
        }
      })
      .catch((cause: unknown) => {
        clearTimeout(timer)
        throw new NoAnswer(cause instanceof Error && cause.name === "TimeoutError")
      })
  }

  /**
   * A request whose answer is validated by `parse`: its value, or a `NotesApiError` (rejected). A read
   * that failed before any answer (a pooled connection the server had closed, e.g. after it refused an
   * upload) is sent once more on a fresh connection; writes are never repeated.
   */
  const request = async <A>(
    token: Redacted.Redacted<string>,
    method: Method,
    path: string,
    parse: Parse<A>,
    input?: unknown,
    headers: Record<string, string> = {}
  ): Promise<A> => {
    const body = input === undefined ? undefined : JSON.stringify(input)
    let response: Answer
    try {
      response = await sendOnce(token, method, path, body, headers).catch((failure: NoAnswer) => {
        if (method !== "GET" || failure.timedOut) throw failure
        return sendOnce(token, method, path, body, headers)
      })
    } catch (failure) {
      throw new NotesApiError({
        status: 0,
        reason: "unavailable",
        message:
          failure instanceof NoAnswer && failure.timedOut
            ? `The notes API did not answer within ${timeoutMs / 1000} s`
            : "The notes API could not be reached"
      })
    }
    let json: unknown
    try {
      json = response.text.length === 0 ? undefined : JSON.parse(response.text)
    } catch {
      json = undefined
    }
    // a 304 answers only a request that named the entity tag it holds
    const notModified = response.status === 304 && headers["if-none-match"] !== undefined
    if (!notModified && (response.status < 200 || response.status > 299)) throw errorOf(response, json)
    const parsed = parse(json, response)
    if (parsed === undefined) {
      throw new NotesApiError({
        status: response.status,
        reason: "invalid_response",
        message: `The notes API answered ${method} ${path} with a body this server does not understand`
      })
    }
    return parsed.value
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

  /**
   * The lists last answered, per owner and query, with their entity tags (oldest first, at most
   * `rememberedLists`): the next list of that owner asks `If-None-Match`, and a 304 - which the API
   * gives only after it accepted the token - answers with the list kept here, the same frozen array.
   */
  const lists = new Map<string, RememberedList>()
  const maxLists = options.rememberedLists ?? 1_000
  const remember = (key: string, notes: Array<NoteSummary> | undefined, etag: string | undefined) => {
    lists.delete(key)
    if (notes === undefined || etag === undefined || notes.length > MAX_REMEMBERED_NOTES || maxLists < 1)
      return
    lists.set(key, { etag, notes: Object.freeze(notes) })
    if (lists.size > maxLists) {
      const oldest = lists.keys().next()
      if (oldest.done !== true) lists.delete(oldest.value)
    }
  }
  // a list never carries the notes' content (notes_get reads one): less to send, parse and keep
  const ALL_NOTES = "/notes?exclude=content"
  const listPath = (category: string | undefined) =>
    category === undefined
      ? ALL_NOTES
      : `/notes?${new URLSearchParams({ exclude: "content", category }).toString()}`

  return {
    /** Closes the pool's connections (when the server closes). */
    close: (): Promise<void> => dispatcher.close(),
    /**
     * The owner's notes (without their content). With `owner` (the user the token acts for), the
     * answer is kept for that owner and revalidated by the next call (see `lists`).
     */
    list: (
      token: Redacted.Redacted<string>,
      filter: { readonly category?: string | undefined },
      owner?: string
    ): Promise<ReadonlyArray<NoteSummary>> => {
      const path = listPath(filter.category)
      const key = owner === undefined ? undefined : `${owner}\n${path}`
      const known = key === undefined ? undefined : lists.get(key)
      return request(
        token,
        "GET",
        path,
        (json, answer) => {
          if (answer.status === 304) return known === undefined ? undefined : { value: known.notes }
          const parsed = parseNoteList(json)
          if (key !== undefined) remember(key, parsed?.value, answer.etag)
          return parsed
        },
        undefined,
        known === undefined ? {} : { "if-none-match": known.etag }
      )
    },
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
      request(token, "DELETE", `/notes/${id}`, parseAnything).then(() => undefined)
  }
}

export interface NoteInput {
  readonly title?: string | undefined
  readonly content?: string | undefined
  readonly category?: string | undefined
  readonly favorite?: boolean | undefined
}

export type NotesApi = ReturnType<typeof makeNotesApi>
