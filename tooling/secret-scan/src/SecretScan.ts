/**
 * The secret scan of the test suites (F19: debug logs leak tokens): given the secrets a run handled and
 * the text it printed (logs, a child process's output), finds every place a secret shows, in any of the
 * forms a careless log line would give it, plus credentials that look like credentials whether or not
 * they are on the list. A finding names only a hint (the first 4 characters and the kind) and the
 * secret's label, never the secret, so a failing assertion cannot leak what it caught.
 *
 * For each known secret (text), the scan looks for:
 * - `raw`: the secret itself;
 * - `url-encoded`: `encodeURIComponent(secret)` (where it differs from the secret);
 * - `form-encoded`: the secret as `application/x-www-form-urlencoded` writes a value (space as `+`);
 * - `base64`, `base64url`: the base64 of its UTF-8 bytes, at each of the 3 byte alignments it can have
 *   inside a longer encoded text (a `Basic` header's `id:secret`, a JSON blob): the characters that
 *   depend on the secret's bytes alone;
 * - `hex`: the hex of its UTF-8 bytes, in either letter case;
 * - `substring`: for a secret longer than 12 characters, any 12 consecutive characters of it (a
 *   truncated or sliced token), reported only when no other form of that secret was found.
 * For a known secret given as bytes (a key), it looks for their `base64`, `base64url` (both at every
 * alignment) and `hex`.
 *
 * Patterns, found whatever the list holds:
 * - `bearer`: `Bearer` (any case) then spaces and a credential of 16 or more token68 characters that is
 *   not a plain word (`Bearer resource_metadata="..."`, an auth-param, is not a credential);
 * - `basic`: `Basic` (any case) then spaces and base64 that decodes to printable `id:secret`;
 * - `refresh_token=`, `client_secret=`: that parameter with a value of 8 or more token characters, as
 *   a form or query writes it, or as a JSON member (`"refresh_token":"..."`); a redaction marker such
 *   as `[redacted]` is not a value;
 * - `jwt`: a JWT-shaped string, three dot-separated base64url parts starting `eyJ`.
 */

export type FindingKind =
  | "raw"
  | "url-encoded"
  | "form-encoded"
  | "base64"
  | "base64url"
  | "hex"
  | "substring"
  | "bearer"
  | "basic"
  | "refresh_token="
  | "client_secret="
  | "jwt"

export interface KnownSecret {
  /** What the secret is, for the report ("refresh token of u-bob"); never the secret itself. */
  readonly label: string
  /** The secret's text, or its bytes (a key). */
  readonly value: string | Uint8Array
}

export interface Finding {
  readonly kind: FindingKind
  /** The first 4 characters of the secret (or of the matched credential) and the kind. */
  readonly hint: string
  /** The label of the known secret; undefined for a pattern hit. */
  readonly label: string | undefined
  /** 1-based line of the first occurrence. */
  readonly line: number
  readonly count: number
}

/** Shorter secrets are refused: they would be found by chance in any text. */
export const MIN_SECRET_LENGTH = 8
/** The length of the pieces of a longer secret that are looked for on their own. */
export const SUBSTRING_LENGTH = 12

const lengthOf = (value: string | Uint8Array) => (typeof value === "string" ? value.length : value.byteLength)

/**
 * The secrets of a run, collected as the run handles them. Adding the same value twice keeps the first
 * label. A value shorter than `MIN_SECRET_LENGTH` is refused with an error naming its label (an empty
 * value usually means the test read the wrong field).
 */
export class SecretList {
  readonly #secrets = new Map<string, KnownSecret>()

  add(label: string, value: string | Uint8Array): this {
    if (lengthOf(value) < MIN_SECRET_LENGTH) {
      throw new Error(
        `secret "${label}" is ${lengthOf(value)} ${typeof value === "string" ? "characters" : "bytes"} long: ` +
          `too short to scan for (at least ${MIN_SECRET_LENGTH}); is it the right value?`
      )
    }
    const id = typeof value === "string" ? `s:${value}` : `b:${Buffer.from(value).toString("hex")}`
    if (!this.#secrets.has(id)) this.#secrets.set(id, { label, value })
    return this
  }

  addAll(secrets: Iterable<KnownSecret>): this {
    for (const secret of secrets) this.add(secret.label, secret.value)
    return this
  }

  get size(): number {
    return this.#secrets.size
  }

  /** How many secrets have a label starting with `prefix`. */
  count(prefix: string): number {
    let n = 0
    for (const secret of this.#secrets.values()) if (secret.label.startsWith(prefix)) n++
    return n
  }

  [Symbol.iterator](): Iterator<KnownSecret> {
    return this.#secrets.values()
  }
}

const hintOf = (text: string, kind: FindingKind) => `${text.slice(0, 4)}... (${kind})`

/** The base64 characters that depend only on `bytes`, for each of the 3 alignments they can have. */
const base64Cores = (bytes: Uint8Array, encoding: "base64" | "base64url"): Array<string> => {
  const cores: Array<string> = []
  for (let shift = 0; shift < 3; shift++) {
    const encoded = Buffer.concat([Buffer.alloc(shift), bytes])
      .toString(encoding)
      .replace(/=+$/, "")
    const first = Math.ceil((8 * shift) / 6)
    const end = Math.floor((8 * (shift + bytes.byteLength)) / 6)
    cores.push(encoded.slice(first, end))
  }
  return cores
}

const formEncode = (value: string) => new URLSearchParams([["", value]]).toString().slice(1)

interface Form {
  readonly kind: FindingKind
  readonly needle: string
  /** Matched against the lower-cased text. */
  readonly anyCase: boolean
}

const formsOf = (value: string | Uint8Array): Array<Form> => {
  const forms: Array<Form> = []
  const bytes = typeof value === "string" ? Buffer.from(value, "utf8") : value
  if (typeof value === "string") {
    forms.push({ kind: "raw", needle: value, anyCase: false })
    const url = encodeURIComponent(value)
    if (url !== value) forms.push({ kind: "url-encoded", needle: url, anyCase: false })
    const form = formEncode(value)
    if (form !== value && form !== url) forms.push({ kind: "form-encoded", needle: form, anyCase: false })
  }
  for (const encoding of ["base64", "base64url"] as const) {
    for (const core of base64Cores(bytes, encoding)) {
      // a core without `+`, `/`, `-` or `_` is both: it is reported under both kinds
      if (!forms.some((f) => f.kind === encoding && f.needle === core))
        forms.push({ kind: encoding, needle: core, anyCase: false })
    }
  }
  forms.push({ kind: "hex", needle: Buffer.from(bytes).toString("hex"), anyCase: true })
  return forms
}

/** 1-based line numbers of offsets in `text`. */
const lineFinder = (text: string) => {
  const starts: Array<number> = [0]
  for (let i = text.indexOf("\n"); i !== -1; i = text.indexOf("\n", i + 1)) starts.push(i + 1)
  return (offset: number) => {
    let low = 0
    let high = starts.length - 1
    while (low < high) {
      const mid = (low + high + 1) >> 1
      if ((starts[mid] ?? 0) <= offset) low = mid
      else high = mid - 1
    }
    return low + 1
  }
}

const occurrences = (text: string, needle: string): { first: number; count: number } => {
  let first = -1
  let count = 0
  for (let i = text.indexOf(needle); i !== -1; i = text.indexOf(needle, i + 1)) {
    if (first === -1) first = i
    count++
  }
  return { first, count }
}

const TOKEN68 = "A-Za-z0-9\\-._~+/"
const PATTERNS: ReadonlyArray<{
  readonly kind: FindingKind
  readonly pattern: RegExp
  /** The credential in a match, or undefined when the match is not one. */
  readonly credential: (match: RegExpExecArray) => string | undefined
}> = [
  {
    kind: "bearer",
    pattern: new RegExp(`\\bbearer[ \\t]+([${TOKEN68}]{16,}=*)`, "gi"),
    credential: (m) => {
      const value = m[1] ?? ""
      return /^[A-Za-z_]+$/.test(value.replace(/=+$/, "")) ? undefined : value
    }
  },
  {
    kind: "basic",
    pattern: /\bbasic[ \t]+([A-Za-z0-9+/]{4,}={0,2})/gi,
    credential: (m) => {
      const value = m[1] ?? ""
      const decoded = Buffer.from(value, "base64").toString("latin1")
      return /^[\x20-\x7e]*:[\x20-\x7e]*$/.test(decoded) ? value : undefined
    }
  },
  {
    kind: "refresh_token=",
    pattern: /\brefresh_token(?:=|"\s*:\s*")([A-Za-z0-9\-._~+/%=]{8,})/g,
    credential: (m) => m[1]
  },
  {
    kind: "client_secret=",
    pattern: /\bclient_secret(?:=|"\s*:\s*")([A-Za-z0-9\-._~+/%=]{8,})/g,
    credential: (m) => m[1]
  },
  {
    kind: "jwt",
    pattern: /eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*/g,
    credential: (m) => m[0]
  }
]

/**
 * Every finding of `secrets` and of the credential patterns in `text`: one per secret and form, and one
 * per pattern and distinct credential, with the line of its first occurrence and how often it occurs.
 */
export const scanForSecrets = (text: string, secrets: Iterable<KnownSecret>): ReadonlyArray<Finding> => {
  const lineOf = lineFinder(text)
  const lower = text.toLowerCase()
  const findings: Array<Finding> = []
  const windows = new Map<string, number>()
  const known = [...secrets]
  const foundOtherwise = new Set<number>()
  known.forEach((secret, index) => {
    if (lengthOf(secret.value) < MIN_SECRET_LENGTH) {
      throw new Error(`secret "${secret.label}" is too short to scan for (at least ${MIN_SECRET_LENGTH})`)
    }
    const start = typeof secret.value === "string" ? secret.value : Buffer.from(secret.value).toString("hex")
    for (const form of formsOf(secret.value)) {
      const found = form.anyCase
        ? occurrences(lower, form.needle.toLowerCase())
        : occurrences(text, form.needle)
      if (found.count === 0) continue
      foundOtherwise.add(index)
      findings.push({
        kind: form.kind,
        hint: hintOf(start, form.kind),
        label: secret.label,
        line: lineOf(found.first),
        count: found.count
      })
    }
    if (typeof secret.value === "string" && secret.value.length > SUBSTRING_LENGTH) {
      for (let i = 0; i + SUBSTRING_LENGTH <= secret.value.length; i++) {
        const piece = secret.value.slice(i, i + SUBSTRING_LENGTH)
        if (!windows.has(piece)) windows.set(piece, index)
      }
    }
  })
  if (windows.size > 0) {
    const pieces = new Map<number, { first: number; count: number }>()
    for (let i = 0; i + SUBSTRING_LENGTH <= text.length; i++) {
      const index = windows.get(text.slice(i, i + SUBSTRING_LENGTH))
      if (index === undefined || foundOtherwise.has(index)) continue
      const seen = pieces.get(index)
      pieces.set(index, seen === undefined ? { first: i, count: 1 } : { ...seen, count: seen.count + 1 })
    }
    for (const [index, found] of pieces) {
      const secret = known[index]
      if (secret === undefined || typeof secret.value !== "string") continue
      findings.push({
        kind: "substring",
        hint: hintOf(secret.value, "substring"),
        label: secret.label,
        line: lineOf(found.first),
        count: found.count
      })
    }
  }
  for (const { kind, pattern, credential } of PATTERNS) {
    const byCredential = new Map<string, { first: number; count: number }>()
    for (const match of text.matchAll(pattern)) {
      const value = credential(match as RegExpExecArray)
      if (value === undefined) continue
      const seen = byCredential.get(value)
      byCredential.set(
        value,
        seen === undefined ? { first: match.index, count: 1 } : { ...seen, count: seen.count + 1 }
      )
    }
    for (const [value, found] of byCredential) {
      findings.push({
        kind,
        hint: hintOf(value, kind),
        label: undefined,
        line: lineOf(found.first),
        count: found.count
      })
    }
  }
  return findings
}

/** The findings as a short report for an assertion message: hints, labels and lines only. */
export const formatFindings = (findings: ReadonlyArray<Finding>): string =>
  findings.length === 0
    ? "no secret found"
    : `${findings.length} secret finding(s): ${findings
        .map(
          (f) =>
            `${f.hint}${f.label === undefined ? "" : ` ${f.label}`} at line ${f.line}${f.count > 1 ? ` (${f.count} times)` : ""}`
        )
        .join("; ")}`
