import type { SqlError } from "@effect/sql/SqlError"
import { StorageUnavailable } from "@token-broker/core"

const codeOf = (cause: unknown): string | undefined => {
  if (typeof cause !== "object" || cause === null) return undefined
  const code = (cause as { code?: unknown }).code
  return typeof code === "string" && /^[A-Za-z0-9_]{1,64}$/.test(code) ? code : undefined
}

/** A database error from the server (PostgreSQL `DatabaseError`): its text may quote row values. */
const isServerError = (cause: unknown): boolean =>
  typeof cause === "object" && cause !== null && "severity" in cause

/**
 * What went wrong, without data values or secrets: the driver's or server's error code (SQLSTATE,
 * `SQLITE_BUSY`, `ECONNREFUSED`), or for a client-side error without a code, its message (client-side
 * messages such as "Connection terminated unexpectedly" never quote parameters). Server messages are
 * left out: they can quote row values ("Key (subject)=(...) already exists").
 */
export const describeCause = (cause: unknown): string => {
  const code = codeOf(cause)
  if (code !== undefined) return code
  if (!isServerError(cause) && cause instanceof Error && cause.message !== "") {
    return cause.message.slice(0, 160)
  }
  return "no error code"
}

/** Maps a driver failure to `StorageUnavailable` naming the operation and the error code only. */
export const storageUnavailable =
  (backend: string, operation: string) =>
  (error: SqlError | StorageUnavailable): StorageUnavailable =>
    error._tag === "StorageUnavailable"
      ? error
      : new StorageUnavailable({
          operation,
          message: `${backend} storage failed during ${operation}: ${error.message ?? "error"} (${describeCause(error.cause)})`
        })
