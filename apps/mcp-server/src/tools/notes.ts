import { Exit, type Redacted } from "effect"
import { z } from "zod"
import { withUpstreamToken } from "../internal/brokered.js"
import { type NoteSummary, NotesApiError } from "../internal/notesApi.js"
import {
  type Caller,
  callerOf,
  errorResult,
  type ToolContext,
  type ToolResult,
  textResult
} from "../ToolContext.js"

const noteId = z
  .number({ error: "id must be a number (a note's id from notes_list)" })
  .int({ message: "id must be a whole number" })
  .positive({ message: "id must be positive" })
  .describe("The note's id (from notes_list)")
const title = z.string().max(1_000, { message: "title must be at most 1000 characters" })
/** The notes API (Nextcloud Notes) accepts bodies up to 256 KiB: larger content fails there, unclearly. */
const CONTENT_BYTES = 256 * 1024 - 4 * 1024
const content = z
  .string()
  .max(CONTENT_BYTES, { message: "content must be under 256 KiB (UTF-8)" })
  .refine((text) => Buffer.byteLength(text, "utf8") <= CONTENT_BYTES, {
    message: "content must be under 256 KiB (UTF-8)"
  })
const category = z.string().max(1_000, { message: "category must be at most 1000 characters" })

/** What the tools return as structured content (their `outputSchema`s). */
export const NoteSummaryOut = z.object({
  id: z.number().int(),
  title: z.string(),
  category: z.string(),
  favorite: z.boolean(),
  modified: z.string().describe("ISO 8601 time of the last change"),
  etag: z.string()
})
const NoteOut = NoteSummaryOut.extend({ content: z.string(), readonly: z.boolean() })

const summary = (note: NoteSummary) => ({
  id: note.id,
  title: note.title,
  category: note.category,
  favorite: note.favorite,
  modified: new Date(note.modified * 1000).toISOString(),
  etag: note.etag
})

/** What notes_list answers for a list: one line per note, and the summaries as structured content. */
export const listResult = (list: ReadonlyArray<NoteSummary>): ToolResult =>
  textResult(
    list.length === 0
      ? "No notes."
      : list
          .map((n) => `#${n.id} ${n.title}${n.category ? ` [${n.category}]` : ""}${n.favorite ? " *" : ""}`)
          .join("\n"),
    { notes: list.map(summary) }
  )

const upstreamError = (provider: string, error: NotesApiError): ToolResult =>
  errorResult(
    error.reason === "unauthorized"
      ? `${error.message}. If this persists, call connect_provider with provider "${provider}" to renew the connection.`
      : error.message,
    {
      status: "upstream_error",
      provider,
      httpStatus: error.status,
      reason: error.reason,
      ...(error.oauthError === undefined ? {} : { error: error.oauthError }),
      ...(error.current === undefined ? {} : { current: error.current })
    }
  )

/**
 * The answer for a list the notes API keeps answering 304 to (the same frozen array): made once, then
 * the same frozen answer (the SDK only reads a tool's result).
 */
const listAnswers = new WeakMap<ReadonlyArray<NoteSummary>, ToolResult>()
const answerList = (list: ReadonlyArray<NoteSummary>): ToolResult => {
  if (!Object.isFrozen(list)) return listResult(list)
  let answer = listAnswers.get(list)
  if (answer === undefined) {
    answer = deepFreeze(listResult(list))
    listAnswers.set(list, answer)
  }
  return answer
}
const deepFreeze = <A>(value: A): A => {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    for (const field of Object.values(value)) deepFreeze(field)
    Object.freeze(value)
  }
  return value
}

/** The notes tools against the notes API v1 (Nextcloud Notes, or dev-idp's stand-in). */
export const registerNotesTools = (ctx: ToolContext): void => {
  const notes = ctx.notes
  if (notes === undefined) return
  const { api, provider } = notes

  /** Brokered token with only `scopes`, then the API call; every failure answered in words. */
  const call = <A>(
    extra: Parameters<typeof callerOf>[0],
    scopes: ReadonlyArray<string>,
    request: (token: Redacted.Redacted<string>, caller: Caller) => Promise<A>,
    answer: (value: A) => ToolResult
  ): Promise<ToolResult> => {
    const caller = callerOf(extra)
    const attempt = (retryOnRefusal: boolean): Promise<ToolResult> => {
      let refused: Redacted.Redacted<string> | undefined
      const result = withUpstreamToken(ctx, caller, provider, scopes, (token) =>
        request(token, caller).then(answer, (failure: unknown) => {
          if (!(failure instanceof NotesApiError)) {
            return errorResult("The notes API call failed (internal error).")
          }
          if (failure.reason === "unauthorized") refused = token
          return upstreamError(provider, failure)
        })
      )
      return result.then(async (outcome) => {
        if (refused === undefined || !retryOnRefusal) return outcome
        // The API refused the brokered token: the broker drops it (and counts the refusal), then one retry
        // with a freshly refreshed token.
        const reported = await ctx.run(
          ctx.tokenSource.reportRejected({ subject: caller.subject, provider, accessToken: refused })
        )
        return Exit.isSuccess(reported) ? attempt(false) : outcome
      })
    }
    return attempt(true)
  }

  ctx.server.registerTool(
    "notes_list",
    {
      title: "List notes",
      description:
        "Lists your notes (id, title, category, favorite, last modified), optionally of one category.",
      inputSchema: { category: category.optional().describe("Only notes of this category") },
      outputSchema: { notes: z.array(NoteSummaryOut) },
      annotations: { readOnlyHint: true, idempotentHint: true, openWorldHint: true }
    },
    ({ category }, extra) =>
      call(
        extra,
        notes.readScopes,
        // kept per subject, and revalidated by the next call
        (token, caller) => api.list(token, { category }, caller.subject),
        answerList
      )
  )

  ctx.server.registerTool(
    "notes_get",
    {
      title: "Read a note",
      description:
        "Reads one note with its content and etag (pass the etag to notes_update to avoid overwriting changes).",
      inputSchema: { id: noteId },
      outputSchema: { note: NoteOut },
      annotations: { readOnlyHint: true, idempotentHint: true, openWorldHint: true }
    },
    ({ id }, extra) =>
      call(
        extra,
        notes.readScopes,
        (token) => api.get(token, id),
        (note) =>
          textResult(`# ${note.title}\n\n${note.content}`, {
            note: { ...summary(note), content: note.content, readonly: note.readonly }
          })
      )
  )

  ctx.server.registerTool(
    "notes_create",
    {
      title: "Create a note",
      description: "Creates a note. Without a title, the first line of the content becomes the title.",
      inputSchema: {
        title: title.optional().describe("The title (default: the content's first line)"),
        content: content.describe("The note's text (Markdown)"),
        category: category.optional().describe("A category (folder), e.g. Work"),
        favorite: z.boolean({ error: "favorite must be true or false" }).optional()
      },
      outputSchema: { note: NoteSummaryOut },
      annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: true }
    },
    (input, extra) =>
      call(
        extra,
        notes.writeScopes,
        (token) => api.create(token, input),
        (note) => textResult(`Created note #${note.id} "${note.title}".`, { note: summary(note) })
      )
  )

  ctx.server.registerTool(
    "notes_update",
    {
      title: "Update a note",
      description:
        "Changes a note's title, content, category or favorite flag; fields not given stay as they are. With etag, the update fails instead of overwriting a newer version.",
      inputSchema: {
        id: noteId,
        title: title.optional(),
        content: content.optional(),
        category: category.optional(),
        favorite: z.boolean({ error: "favorite must be true or false" }).optional(),
        etag: z
          .string()
          .regex(/^[A-Za-z0-9._:-]{1,128}$/, { message: "etag must be the etag notes_get returned" })
          .optional()
          .describe("The etag from notes_get: refuse the update if the note changed since")
      },
      outputSchema: { note: NoteSummaryOut },
      annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: true }
    },
    ({ id, etag, ...fields }, extra) => {
      if (Object.values(fields).every((value) => value === undefined)) {
        return Promise.resolve(
          errorResult("Nothing to update: give at least one of title, content, category, favorite.")
        )
      }
      return call(
        extra,
        notes.writeScopes,
        (token) => api.update(token, id, fields, etag),
        (note) => textResult(`Updated note #${note.id} "${note.title}".`, { note: summary(note) })
      )
    }
  )

  ctx.server.registerTool(
    "notes_delete",
    {
      title: "Delete a note",
      description: "Deletes a note for good.",
      inputSchema: { id: noteId },
      outputSchema: { deleted: z.number().int() },
      annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: true }
    },
    ({ id }, extra) =>
      call(
        extra,
        notes.writeScopes,
        (token) => api.remove(token, id),
        () => textResult(`Deleted note #${id}.`, { deleted: id })
      )
  )
}
