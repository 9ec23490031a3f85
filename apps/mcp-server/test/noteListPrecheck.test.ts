/**
 * The notes list's in-place check (`parseNoteList`, `plainNoteSummary`) against zod's
 * `z.array(NoteSummarySchema)`:
 * over generated answers - valid notes, notes with one field changed to another JSON value or removed,
 * extra fields (a content among them), non-integer or unsafe ids, and arbitrary JSON - the shortcut
 * accepts only what zod accepts, and gives exactly what zod gives; a plainly valid note is taken by
 * the shortcut itself.
 */
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { z } from "zod"
import { NoteSummarySchema, parseNoteList, plainNoteSummary } from "../src/internal/notesApi.js"

const zodList = z.array(NoteSummarySchema)

const validNote = fc.record({
  id: fc.integer({ min: -1_000_000, max: Number.MAX_SAFE_INTEGER }),
  etag: fc.string(),
  readonly: fc.boolean(),
  title: fc.string(),
  content: fc.string(),
  category: fc.string(),
  favorite: fc.boolean(),
  modified: fc.double({ noNaN: true, noDefaultInfinity: true })
})
const FIELDS = ["id", "etag", "readonly", "title", "content", "category", "favorite", "modified"] as const
const oddValue = fc.oneof(
  fc.jsonValue(),
  fc.constantFrom(1.5, -0, 2 ** 53, -(2 ** 53), Number.MAX_VALUE, "1", "true", null, [], {})
)
/** A valid note changed in one way: a field replaced or removed, or one more field. */
const changedNote = fc
  .tuple(validNote, fc.constantFrom(...FIELDS), oddValue, fc.constantFrom("replace", "remove", "extra"))
  .map(([note, field, value, how]) => {
    const changed: Record<string, unknown> = { ...note }
    if (how === "replace") changed[field] = value
    else if (how === "remove") delete changed[field]
    else changed[`${field}Extra`] = value
    return changed
  })
const answer = fc.oneof(
  fc.array(validNote, { maxLength: 5 }),
  fc.array(fc.oneof(validNote, changedNote), { maxLength: 5 }),
  fc.jsonValue()
)

describe("the notes list's in-place check", () => {
  it("accepts only what zod accepts and gives what zod gives", () => {
    let shortcut = 0
    fc.assert(
      fc.property(answer, (json) => {
        const viaZod = zodList.safeParse(json)
        const parsed = parseNoteList(json)
        expect(parsed === undefined).toBe(!viaZod.success)
        if (viaZod.success) expect(parsed?.value).toStrictEqual(viaZod.data)
        if (Array.isArray(json)) {
          for (const item of json) {
            const note = plainNoteSummary(item)
            if (note === undefined) continue
            shortcut += 1
            // the shortcut's note is the schema's
            expect(note).toStrictEqual(NoteSummarySchema.parse(item))
          }
        }
      }),
      { numRuns: 5000 }
    )
    expect(shortcut).toBeGreaterThan(1000)
  })

  it("a plainly valid note is taken in place; one zod must judge is not", () => {
    const note = {
      id: 7,
      etag: "e",
      readonly: false,
      title: "t",
      content: "c",
      category: "",
      favorite: true,
      modified: 1_700_000_000
    }
    const { content: _content, ...summary } = note
    expect(plainNoteSummary(note)).toStrictEqual(summary)
    expect(plainNoteSummary({ ...note, extra: 1 })).toStrictEqual(summary)
    expect(plainNoteSummary(summary)).toStrictEqual(summary)
    for (const bad of [
      { ...note, id: 1.5 },
      { ...note, id: 2 ** 53 },
      { ...note, modified: Number.POSITIVE_INFINITY },
      { ...note, favorite: "true" },
      [note],
      null
    ]) {
      expect(plainNoteSummary(bad)).toBeUndefined()
      expect(NoteSummarySchema.safeParse(bad).success).toBe(false)
    }
  })
})
