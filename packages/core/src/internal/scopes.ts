import { Effect } from "effect"
import { InvalidRequest } from "../Errors.js"

const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/

/** Validates scope tokens (RFC 6749 section 3.3), removes duplicates and sorts them. */
export const normalizeScopes = (
  scopes: ReadonlyArray<string>,
  field: string
): Effect.Effect<ReadonlyArray<string>, InvalidRequest> => {
  const bad = scopes.find((scope) => !SCOPE_TOKEN.test(scope))
  if (bad !== undefined) {
    return Effect.fail(
      new InvalidRequest({
        field,
        message: `"${bad.slice(0, 64)}" is not a valid scope token (RFC 6749 3.3)`
      })
    )
  }
  return Effect.succeed(sortScopes(scopes))
}

/**
 * The scopes a request names: at least one. An empty list is refused rather than read as "no downscope"
 * (a caller limited to some scopes would otherwise get all of the grant's); leave the list out instead.
 */
export const requestedScopes = (
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
    : normalizeScopes(scopes, field)

export const sortScopes = (scopes: ReadonlyArray<string>): ReadonlyArray<string> =>
  [...new Set(scopes)].sort()

export const splitScope = (scope: string | undefined | null): ReadonlyArray<string> | null =>
  scope === undefined || scope === null ? null : sortScopes(scope.split(" ").filter((s) => s.length > 0))

export const isSubset = (subset: ReadonlyArray<string>, of: ReadonlyArray<string>): boolean =>
  subset.every((scope) => of.includes(scope))

export const sameScopes = (a: ReadonlyArray<string>, b: ReadonlyArray<string>): boolean =>
  a.length === b.length && a.every((scope, i) => scope === b[i])
