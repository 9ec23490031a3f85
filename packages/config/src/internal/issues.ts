import { ConfigInvalid, ZodIssues } from "@token-broker/core"
import type { z } from "zod"

/** How config's problems are reported: one ConfigInvalid naming the field and the fix. */
export const invalid = (field: string, message: string) => new ConfigInvalid({ field, message })

/** `["providers", 0, "issuer"]` -> `providers[0].issuer` (the form core's own ConfigInvalid uses). */
export const fieldOf = (path: ReadonlyArray<PropertyKey>): string => ZodIssues.fieldOf(path)

/**
 * The first, most precise zod issue (core's one formatter: the deepest union branch, never the value) as a
 * ConfigInvalid naming the field; an unknown key also points at the JSON Schema, where the spelling is.
 */
export const fromZod = (error: z.ZodError, path: string | undefined): ConfigInvalid => {
  const problem = ZodIssues.firstZodProblem(error)
  if (problem === undefined) return invalid("(root)", "the configuration is invalid")
  const hint =
    problem.issue.code === "unrecognized_keys"
      ? ": check the spelling against the JSON Schema (schema/token-broker.schema.json)"
      : ""
  const more =
    problem.others > 0 ? ` (and ${problem.others} more problem${problem.others > 1 ? "s" : ""})` : ""
  return invalid(
    problem.field,
    `${path === undefined ? "config" : path}: ${problem.field}: ${problem.description}${hint}${more}`
  )
}
