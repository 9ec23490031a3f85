import { createHash } from "node:crypto"
import type { IncomingMessage, ServerResponse } from "node:http"
import { createLocalJWKSet, type JSONWebKeySet, type JWTPayload, jwtVerify } from "jose"
import { z } from "zod"
import { readBody, sendEmpty, sendJson, sendJsonText } from "./internal/Http.js"

/** A note as the Nextcloud Notes API v1 shapes it. */
export interface Note {
  readonly id: number
  readonly etag: string
  readonly readonly: boolean
  readonly title: string
  readonly content: string
  readonly category: string
  readonly favorite: boolean
  /** Epoch seconds. */
  readonly modified: number
}

export const NOTES_READ = "notes:read"
export const NOTES_WRITE = "notes:write"

const NoteInput = z.object({
  title: z.string().optional(),
  content: z.string().optional(),
  category: z.string().optional(),
  favorite: z.boolean().optional()
})

class RequestError extends Error {
  readonly status: number
  readonly headers: Record<string, string>
  readonly body: unknown
  constructor(status: number, body: unknown, headers: Record<string, string> = {}) {
    super(`HTTP ${status}`)
    this.status = status
    this.body = body
    this.headers = headers
  }
}

const quote = (value: string): string => `"${value.replace(/["\\]/g, "")}"`
const challenge = (params: Record<string, string>): string =>
  `Bearer ${Object.entries({ realm: "notes", ...params })
    .map(([key, value]) => `${key}=${quote(value)}`)
    .join(", ")}`

const invalidToken = (description: string): RequestError =>
  new RequestError(
    401,
    { error: "invalid_token", error_description: description },
    { "www-authenticate": challenge({ error: "invalid_token", error_description: description }) }
  )

const etagOf = (note: Omit<Note, "etag" | "modified">, revision: number): string =>
  createHash("md5")
    .update(JSON.stringify([note.id, note.title, note.content, note.category, note.favorite, revision]))
    .digest("hex")

const titleFrom = (content: string): string => {
  const firstLine = content.split("\n", 1)[0]?.trim() ?? ""
  return firstLine.length > 0 ? firstLine.slice(0, 100) : "New note"
}

const without = (note: Note, fields: ReadonlySet<string>): Partial<Note> =>
  Object.fromEntries(Object.entries(note).filter(([field]) => !fields.has(field)))

/** The entity tags of an `If-Match` or `If-None-Match` header, unquoted (weak ones as strong). */
const parseIfMatch = (header: string | undefined): string[] | undefined =>
  header === undefined
    ? undefined
    : header.split(",").map((tag) =>
        tag
          .trim()
          .replace(/^W\//, "")
          .replace(/^"(.*)"$/, "$1")
      )

export interface NotesApiOptions {
  readonly issuer: string
  /** The `aud` the access tokens must carry. */
  readonly audience: string
  /** The provider's public signing keys. */
  readonly jwks: JSONWebKeySet
  /** Mount path, e.g. `/notes/api/v1`. */
  readonly basePath: string
  /** The clock tokens are checked against (epoch ms); `Date.now` by default. */
  readonly now?: () => number
}

/** Access tokens remembered as verified at once; beyond, the oldest is forgotten. */
const MAX_VERIFIED_TOKENS = 1000
/** Lists remembered as made (per user and query); beyond, the oldest is forgotten. */
const MAX_LISTS = 1000

/**
 * A stand-in upstream API shaped after the Nextcloud Notes API v1, storing notes in memory per user
 * (the access token's `sub`). It accepts only JWT access tokens (`typ: at+jwt`) from this issuer for
 * its audience, and checks `notes:read` for reads and `notes:write` for writes.
 */
export class NotesApi {
  readonly basePath: string
  readonly #options: NotesApiOptions
  readonly #jwks: ReturnType<typeof createLocalJWKSet>
  readonly #notes = new Map<string, Map<number, Note & { revision: number }>>()
  /**
   * Access tokens that verified, by their exact text, with their claims: a repeat request skips the
   * signature check (RS256, the larger part of a list's cost) until the token's `exp`, as a resource
   * server's token cache does. A token that differs in any character is verified in full.
   */
  readonly #verified = new Map<string, JWTPayload>()
  /** Per user, a count of changes to their notes; the lists made at each (`#list`). */
  readonly #versions = new Map<string, number>()
  readonly #lists = new Map<
    string,
    { readonly version: number; readonly text: string; readonly etag: string }
  >()
  #nextId = 1

  constructor(options: NotesApiOptions) {
    this.#options = options
    this.basePath = options.basePath
    this.#jwks = createLocalJWKSet(options.jwks)
  }

  /** How `GET /notes` was answered: with the list, or 304 to its entity tag (for test assertions). */
  readonly listAnswers = { full: 0, notModified: 0 }

  /** The notes of one user (for test assertions). */
  notesOf(sub: string): Note[] {
    return [...(this.#notes.get(sub)?.values() ?? [])].map(({ revision: _revision, ...note }) => note)
  }

  reset(): void {
    this.#notes.clear()
    this.#lists.clear()
    this.listAnswers.full = 0
    this.listAnswers.notModified = 0
  }

  async handle(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    try {
      await this.#route(req, res, path.slice(this.basePath.length))
    } catch (error) {
      if (error instanceof RequestError) return sendJson(res, error.status, error.body, error.headers)
      throw error
    }
  }

  async #authenticate(req: IncomingMessage, scope: string): Promise<JWTPayload & { sub: string }> {
    const header = req.headers.authorization
    const match = header === undefined ? null : /^Bearer ([^\s]+)$/i.exec(header)
    const token = match?.[1]
    if (token === undefined) {
      throw new RequestError(401, { error: "invalid_request" }, { "www-authenticate": challenge({}) })
    }
    const now = this.#options.now?.() ?? Date.now()
    let payload = this.#verified.get(token)
    // jose's own rule: valid while exp is after the current whole second
    if (payload !== undefined && !((payload.exp ?? 0) > Math.floor(now / 1000))) {
      this.#verified.delete(token)
      payload = undefined
    }
    if (payload === undefined) {
      try {
        ;({ payload } = await jwtVerify(token, this.#jwks, {
          issuer: this.#options.issuer,
          audience: this.#options.audience,
          typ: "at+jwt",
          requiredClaims: ["exp", "sub"],
          currentDate: new Date(now)
        }))
      } catch (error) {
        const code = (error as { code?: unknown }).code
        throw invalidToken(
          typeof code === "string" ? `access token rejected (${code})` : "access token rejected"
        )
      }
      if (this.#verified.size >= MAX_VERIFIED_TOKENS) {
        const oldest = this.#verified.keys().next()
        if (oldest.done !== true) this.#verified.delete(oldest.value)
      }
      this.#verified.set(token, payload)
    }
    const sub = payload.sub
    if (sub === undefined) throw invalidToken("access token has no subject")
    const scopes = new Set(typeof payload.scope === "string" ? payload.scope.split(" ") : [])
    if (!scopes.has(scope)) {
      const description = `the access token lacks the scope ${scope}`
      throw new RequestError(
        403,
        { error: "insufficient_scope", error_description: description, scope },
        {
          "www-authenticate": challenge({
            error: "insufficient_scope",
            scope,
            error_description: description
          })
        }
      )
    }
    return { ...payload, sub }
  }

  async #route(req: IncomingMessage, res: ServerResponse, rest: string): Promise<void> {
    const url = new URL(rest, "http://notes.invalid")
    const segments = url.pathname.split("/").filter((s) => s.length > 0)
    if (segments[0] !== "notes" || segments.length > 2) throw new RequestError(404, { message: "not found" })
    const method = req.method ?? "GET"
    const idSegment = segments[1]

    if (idSegment === undefined) {
      if (method === "GET") {
        const { sub } = await this.#authenticate(req, NOTES_READ)
        const { text, etag } = this.#list(sub, url.searchParams)
        if (parseIfMatch(req.headers["if-none-match"])?.includes(etag.slice(1, -1)) === true) {
          this.listAnswers.notModified += 1
          return sendEmpty(res, 304, { etag, "cache-control": "no-store" })
        }
        this.listAnswers.full += 1
        return sendJsonText(res, 200, text, { etag })
      }
      if (method === "POST") {
        const { sub } = await this.#authenticate(req, NOTES_WRITE)
        const input = await this.#input(req)
        const content = input.content ?? ""
        const base = {
          id: this.#nextId++,
          readonly: false,
          title: input.title ?? titleFrom(content),
          content,
          category: input.category ?? "",
          favorite: input.favorite ?? false
        }
        const note = { ...base, revision: 1, etag: etagOf(base, 1), modified: Math.floor(Date.now() / 1000) }
        const notes = this.#notes.get(sub) ?? new Map()
        notes.set(note.id, note)
        this.#notes.set(sub, notes)
        this.#changed(sub)
        return this.#sendNote(res, 200, note)
      }
      throw new RequestError(405, { message: "method not allowed" }, { allow: "GET, POST" })
    }

    const id = Number(idSegment)
    if (!Number.isSafeInteger(id) || id <= 0) throw new RequestError(400, { message: "invalid note id" })
    const scope = method === "GET" ? NOTES_READ : NOTES_WRITE
    if (!["GET", "PUT", "DELETE"].includes(method)) {
      throw new RequestError(405, { message: "method not allowed" }, { allow: "GET, PUT, DELETE" })
    }
    const { sub } = await this.#authenticate(req, scope)
    const notes = this.#notes.get(sub)
    const note = notes?.get(id)
    if (notes === undefined || note === undefined) throw new RequestError(404, { message: "note not found" })

    if (method === "GET") return this.#sendNote(res, 200, note)
    if (method === "DELETE") {
      notes.delete(id)
      this.#changed(sub)
      return sendJson(res, 200, {})
    }
    const ifMatch = parseIfMatch(req.headers["if-match"])
    if (ifMatch !== undefined && !ifMatch.includes("*") && !ifMatch.includes(note.etag)) {
      const { revision: _revision, ...current } = note
      return sendJson(res, 412, current, { etag: quote(note.etag) })
    }
    const input = await this.#input(req)
    const revision = note.revision + 1
    const base = {
      id,
      readonly: false,
      title: input.title ?? note.title,
      content: input.content ?? note.content,
      category: input.category ?? note.category,
      favorite: input.favorite ?? note.favorite
    }
    const updated = {
      ...base,
      revision,
      etag: etagOf(base, revision),
      modified: Math.floor(Date.now() / 1000)
    }
    notes.set(id, updated)
    this.#changed(sub)
    return this.#sendNote(res, 200, updated)
  }

  /**
   * A list as answered for `category` and `exclude` (comma-separated fields left out of every note; the
   * id never is), with its entity tag: a digest of that text, so a client that holds it gets a 304 until
   * one of the user's notes changes. Made once per version of the user's notes.
   */
  #list(sub: string, query: URLSearchParams): { readonly text: string; readonly etag: string } {
    const key = `${sub}\n${query.toString()}`
    const version = this.#versions.get(sub) ?? 0
    const known = this.#lists.get(key)
    if (known !== undefined && known.version === version) return known
    const category = query.get("category")
    const excluded = new Set((query.get("exclude") ?? "").split(","))
    excluded.delete("id")
    excluded.delete("")
    const notes = this.notesOf(sub).filter((note) => category === null || note.category === category)
    const text = JSON.stringify(excluded.size === 0 ? notes : notes.map((note) => without(note, excluded)))
    const made = { version, text, etag: `"${createHash("md5").update(text).digest("hex")}"` }
    this.#lists.delete(key)
    this.#lists.set(key, made)
    if (this.#lists.size > MAX_LISTS) {
      const oldest = this.#lists.keys().next()
      if (oldest.done !== true) this.#lists.delete(oldest.value)
    }
    return made
  }

  /** One of the user's notes changed: every list of theirs is made anew. */
  #changed(sub: string): void {
    this.#versions.set(sub, (this.#versions.get(sub) ?? 0) + 1)
  }

  async #input(req: IncomingMessage): Promise<z.output<typeof NoteInput>> {
    const text = (await readBody(req)).toString("utf8")
    let json: unknown
    try {
      json = text.length === 0 ? {} : JSON.parse(text)
    } catch {
      throw new RequestError(400, { message: "request body is not JSON" })
    }
    const parsed = NoteInput.safeParse(json)
    if (!parsed.success) throw new RequestError(400, { message: z.prettifyError(parsed.error) })
    return parsed.data
  }

  #sendNote(res: ServerResponse, status: number, note: Note & { revision: number }): void {
    const { revision: _revision, ...body } = note
    sendJson(res, status, body, { etag: quote(note.etag) })
  }
}
