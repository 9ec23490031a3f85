import { chmod, readFile, rename, stat, writeFile } from "node:fs/promises"
import { extname } from "node:path"
import { Effect } from "effect"
import { isMap, isSeq, parseDocument } from "yaml"
import { type CliFailure, operationFailed, usageError } from "./Failure.js"

/**
 * Edits of the config file's key list, keeping everything else - comments and layout included, for
 * YAML - as it was. Writes go to a temporary file renamed over the original, so a crash never leaves
 * half a config; the file keeps its mode.
 */

export type KeyEntry =
  | { readonly kid: string; readonly file: string }
  | { readonly kid: string; readonly env: string }

export interface KeyListEdit {
  /** Entries to append. */
  readonly add?: ReadonlyArray<KeyEntry> | undefined
  /** Kids to remove. */
  readonly remove?: ReadonlyArray<string> | undefined
  /** The new `keyRing.current` (kept as is when undefined). */
  readonly current?: string | undefined
}

export interface KeyList {
  readonly kind: string
  readonly kids: ReadonlyArray<string>
  readonly current: string | undefined
}

const readText = (path: string) =>
  Effect.tryPromise({
    try: () => readFile(path, "utf8"),
    catch: () => usageError(`cannot read the config file ${path}`)
  })

const isJson = (path: string) => extname(path) === ".json"

interface Doc {
  readonly keyRing: { kind?: unknown; keys?: unknown; current?: unknown } | undefined
}

/** The key ring section as written in the file (kids in order, `current` when set). */
export const readKeyList = (path: string): Effect.Effect<KeyList, CliFailure> =>
  Effect.gen(function* () {
    const text = yield* readText(path)
    const data = (isJson(path) ? JSON.parse(text) : parseDocument(text).toJS()) as Doc
    const ring = data.keyRing ?? {}
    const keys = Array.isArray(ring.keys) ? (ring.keys as Array<{ kid?: unknown }>) : []
    return {
      kind: typeof ring.kind === "string" ? ring.kind : "unknown",
      kids: keys.map((k) => String(k.kid)),
      current: typeof ring.current === "string" ? ring.current : undefined
    }
  })

export const editKeyList = (path: string, edit: KeyListEdit): Effect.Effect<void, CliFailure> =>
  Effect.gen(function* () {
    const text = yield* readText(path)
    let next: string
    if (isJson(path)) {
      const data = JSON.parse(text) as { keyRing: { keys: Array<{ kid: string }>; current?: string } }
      const keys = data.keyRing.keys.filter((k) => !(edit.remove ?? []).includes(k.kid))
      keys.push(...(edit.add ?? []))
      data.keyRing.keys = keys
      if (edit.current !== undefined) data.keyRing.current = edit.current
      next = `${JSON.stringify(data, null, 2)}\n`
    } else {
      const doc = parseDocument(text)
      const keys = doc.getIn(["keyRing", "keys"])
      if (!isSeq(keys)) return yield* usageError(`${path}: keyRing.keys is not a list`)
      for (let i = keys.items.length - 1; i >= 0; i--) {
        const item = keys.items[i]
        if (isMap(item) && (edit.remove ?? []).includes(String(item.get("kid")))) keys.delete(i)
      }
      for (const entry of edit.add ?? []) keys.add(doc.createNode(entry))
      if (edit.current !== undefined) doc.setIn(["keyRing", "current"], edit.current)
      next = doc.toString()
    }
    yield* Effect.tryPromise({
      try: async () => {
        const mode = (await stat(path)).mode & 0o777
        const temporary = `${path}.${process.pid}.tmp`
        await writeFile(temporary, next, { mode })
        await chmod(temporary, mode)
        await rename(temporary, path)
      },
      catch: (cause) =>
        operationFailed(`cannot write ${path} (${(cause as NodeJS.ErrnoException).code ?? "error"})`)
    })
  })
