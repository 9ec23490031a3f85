/**
 * The one home of the scope rules (RFC 6749 section 3.3): a scope string is scope tokens separated by
 * single spaces; the broker keeps every scope list sorted and without duplicates, so two lists compare
 * by position and a cache key names a scope set once.
 */
import { Effect } from "effect"
import { InvalidRequest } from "./Errors.js"

/**
 * `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`: printable ASCII without space, `"` and `\`. The one
 * pattern of a scope word: zod schemas (config, the HTTP broker, the MCP server's tools) use it as it is.
 */
export const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/

/** What a refused scope word is told, wherever it is checked. */
export const SCOPE_TOKEN_MESSAGE = "a scope is one word of printable ASCII (no spaces or quotes)"

export const isScopeToken = (scope: string): boolean => SCOPE_TOKEN.test(scope)

/** Sorted, without duplicates. */
export const normalize = (scopes: Iterable<string>): ReadonlyArray<string> => [...new Set(scopes)].sort()

/** A scope string (`"b a a"`) as a sorted list without duplicates (`["a", "b"]`); empty entries are dropped. */
export const split = (scope: string): ReadonlyArray<string> =>
  normalize(scope.split(" ").filter((s) => s.length > 0))

/** `split` for a field a provider may leave out: null when there is none. */
export const splitOptional = (scope: string | undefined | null): ReadonlyArray<string> | null =>
  scope === undefined || scope === null ? null : split(scope)

/** The scope string of a list, as sent to a provider or answered to a caller. */
export const join = (scopes: ReadonlyArray<string>): string => scopes.join(" ")

/** Every scope of `subset` is in `of`. */
export const isSubset = (subset: ReadonlyArray<string>, of: ReadonlyArray<string>): boolean =>
  subset.every((scope) => of.includes(scope))

/** The same normalized lists. */
export const same = (a: ReadonlyArray<string>, b: ReadonlyArray<string>): boolean =>
  a.length === b.length && a.every((scope, i) => scope === b[i])

/** Validates scope tokens, then normalizes; `field` names the request field in the error. */
export const validate = (
  scopes: ReadonlyArray<string>,
  field: string
): Effect.Effect<ReadonlyArray<string>, InvalidRequest> => {
  const bad = scopes.find((scope) => !isScopeToken(scope))
  if (bad !== undefined) {
    return Effect.fail(
      new InvalidRequest({
        field,
        message: `"${bad.slice(0, 64)}" is not a valid scope token (RFC 6749 3.3)`
      })
    )
  }
  return Effect.succeed(normalize(scopes))
}

/**
 * The scopes a request names: at least one. An empty list is refused rather than read as "no downscope"
 * (a caller limited to some scopes would otherwise get all of the grant's); leave the list out instead.
 */
export const requested = (
  scopes: ReadonlyArray<string>,
  field: string
): Effect.Effect<ReadonlyArray<string>, InvalidRequest> =>
  scopes.length === 0
    ? Effect.fail(
        new InvalidRequest({
          field,
          message: `${field} is empty: name at least one scope, or leave ${field} out for the default`
        })
      )
    : validate(scopes, field)
