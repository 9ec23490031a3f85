/**
 * One way to turn a zod error into a message a person can act on: the field in `providers[0].issuer` form,
 * the most precise issue (a union's default "Invalid input" is replaced by its closest branch's issue), what
 * is wrong, and how many other problems there are. The message never contains the offending value (zod 4
 * does not put inputs into issues unless asked to), so stored records and request bodies can be reported
 * without exposing what they hold.
 */
import type { z } from "zod"

export type ZodIssue = z.core.$ZodIssue

/** An issue with its full path from the root of the validated value (union branches report relative paths). */
export interface LocatedIssue {
  readonly issue: ZodIssue
  readonly path: ReadonlyArray<PropertyKey>
}

/** The first, most precise problem of a zod error. */
export interface ZodProblem extends LocatedIssue {
  /** The path in `providers[0].issuer` form; the `root` option (default "(root)") for the value itself. */
  readonly field: string
  /** What is wrong, without the field: `is required (expected string)`, `unknown key "x"`, ... */
  readonly description: string
  /** How many other problems the error holds. */
  readonly others: number
}

/** `["providers", 0, "issuer"]` -> `providers[0].issuer`; `root` for the empty path. */
export const fieldOf = (path: ReadonlyArray<PropertyKey>, root = "(root)"): string =>
  path.reduce<string>(
    (acc, key) =>
      typeof key === "number" ? `${acc}[${key}]` : acc === "" ? String(key) : `${acc}.${String(key)}`,
    ""
  ) || root

const depth = (list: ReadonlyArray<LocatedIssue>): number => Math.max(0, ...list.map((e) => e.path.length))

/**
 * The issues with full paths, each union with zod's default message replaced by the issues of its deepest
 * branch (the branch that got furthest is the one the author meant). A union with its own message keeps it:
 * that message names the fix itself.
 */
export const preciseIssues = (
  issues: ReadonlyArray<ZodIssue>,
  prefix: ReadonlyArray<PropertyKey> = []
): Array<LocatedIssue> =>
  issues.flatMap((issue) => {
    const path = [...prefix, ...issue.path]
    if (issue.code === "invalid_union" && issue.errors.length > 0 && issue.message === "Invalid input") {
      const best = issue.errors
        .map((branch) => preciseIssues(branch, path))
        .sort((a, b) => depth(b) - depth(a))[0]
      if (best !== undefined && best.length > 0) return best
    }
    return [{ issue, path }]
  })

/** Keys are caller input: shown, but never more than this many characters of each. */
const KEY_SHOWN = 64

/** What is wrong with one issue, without its field. */
export const zodIssueMessage = (issue: ZodIssue): string => {
  switch (issue.code) {
    case "unrecognized_keys":
      return `unknown key${issue.keys.length > 1 ? "s" : ""} ${issue.keys.map((k) => `"${k.slice(0, KEY_SHOWN)}"`).join(", ")}`
    case "invalid_type": {
      // zod 4 leaves the input out of issues; its message says "received undefined" for a missing field
      const message = issue.message.replace(/^Invalid input: /, "")
      return message.endsWith(", received undefined")
        ? `is required (${message.replace(/, received undefined$/, "")})`
        : message
    }
    default:
      return issue.message
  }
}

/** The first, most precise problem of a zod error (or its issues); undefined when there is none. */
export const firstZodProblem = (
  error: z.ZodError | ReadonlyArray<ZodIssue>,
  options?: { readonly root?: string }
): ZodProblem | undefined => {
  const all = preciseIssues(Array.isArray(error) ? error : (error as z.ZodError).issues)
  const first = all[0]
  if (first === undefined) return undefined
  return {
    ...first,
    field: fieldOf(first.path, options?.root),
    description: zodIssueMessage(first.issue),
    others: all.length - 1
  }
}

/**
 * `field: what is wrong (and N more problems)` for a zod error: the form every package reports validation
 * failures in. `root` names the value itself (default "(root)").
 */
export const formatZodIssues = (
  error: z.ZodError | ReadonlyArray<ZodIssue>,
  options?: { readonly root?: string }
): string => {
  const problem = firstZodProblem(error, options)
  if (problem === undefined) return `${options?.root ?? "(root)"}: invalid`
  const more =
    problem.others > 0 ? ` (and ${problem.others} more problem${problem.others > 1 ? "s" : ""})` : ""
  return `${problem.field}: ${problem.description}${more}`
}
