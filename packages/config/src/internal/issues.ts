import { ConfigInvalid } from "@token-broker/core"
import type { z } from "zod"

/** How config's problems are reported: one ConfigInvalid naming the field and the fix. */
export const invalid = (field: string, message: string) => new ConfigInvalid({ field, message })

/** `["providers", 0, "issuer"]` -> `providers[0].issuer` (the form core's own ConfigInvalid uses). */
export const fieldOf = (path: ReadonlyArray<PropertyKey>): string =>
  path.reduce<string>(
    (acc, key) =>
      typeof key === "number" ? `${acc}[${key}]` : acc === "" ? String(key) : `${acc}.${String(key)}`,
    ""
  ) || "(root)"

const describeIssue = (issue: z.core.$ZodIssue): string => {
  switch (issue.code) {
    case "unrecognized_keys":
      return `unknown key${issue.keys.length > 1 ? "s" : ""} ${issue.keys.map((k) => `"${k}"`).join(", ")}: check the spelling against the JSON Schema (schema/token-broker.schema.json)`
    case "invalid_type":
      return issue.input === undefined
        ? `is required (${issue.message.replace(/^Invalid input: /, "").replace(/, received undefined$/, "")})`
        : issue.message.replace(/^Invalid input: /, "")
    default:
      return issue.message
  }
}

/** The first zod issue as a ConfigInvalid naming the field and the fix. */
export const fromZod = (error: z.ZodError, path: string | undefined): ConfigInvalid => {
  // the deepest issue is the most precise: unions report their branches' issues nested
  const flatten = (
    issues: ReadonlyArray<z.core.$ZodIssue>,
    prefix: ReadonlyArray<PropertyKey>
  ): Array<{
    issue: z.core.$ZodIssue
    path: ReadonlyArray<PropertyKey>
  }> =>
    issues.flatMap((issue) => {
      const full = [...prefix, ...issue.path]
      // a union with its own message says the fix itself; zod's default one is less precise than its branches
      if (issue.code === "invalid_union" && issue.errors.length > 0 && issue.message === "Invalid input") {
        const best = issue.errors
          .map((branch) => flatten(branch, full))
          .sort((a, b) => depth(b) - depth(a))[0]
        if (best !== undefined && best.length > 0) return best
      }
      return [{ issue, path: full }]
    })
  const depth = (list: ReadonlyArray<{ path: ReadonlyArray<PropertyKey> }>) =>
    Math.max(0, ...list.map((e) => e.path.length))
  const all = flatten(error.issues, [])
  const first = all[0]
  if (first === undefined) return invalid("(root)", "the configuration is invalid")
  const field = fieldOf(first.path)
  const more = all.length > 1 ? ` (and ${all.length - 1} more problem${all.length > 2 ? "s" : ""})` : ""
  return invalid(
    field,
    `${path === undefined ? "config" : path}: ${field}: ${describeIssue(first.issue)}${more}`
  )
}
