import type { SqlError } from "@effect/sql/SqlError"
import { StorageUnavailable } from "@token-broker/core"

const codeOf = (cause: unknown): string | undefined => {
  if (typeof cause !== "object" || cause === null) return undefined
  const code = (cause as { code?: unknown }).code
  return typeof code === "string" && /^[A-Za-z0-9_]{1,64}$/.test(code) ? code : undefined
}

/**
 * A database error from the server (PostgreSQL `DatabaseError`, mysql2's error with the server's
 * `sqlMessage`): its text may quote row values.
 */
const isServerError = (cause: unknown): boolean =>
  typeof cause === "object" && cause !== null && ("severity" in cause || "sqlMessage" in cause)

/** The server's error number and SQLSTATE (MariaDB/MySQL), for an error the driver has no name for. */
const numberOf = (cause: unknown): string | undefined => {
  if (typeof cause !== "object" || cause === null) return undefined
  const { errno, sqlState } = cause as { errno?: unknown; sqlState?: unknown }
  if (typeof errno !== "number" || !Number.isInteger(errno)) return undefined
  return typeof sqlState === "string" && /^[0-9A-Z]{5}$/.test(sqlState)
    ? `errno ${errno}, SQLSTATE ${sqlState}`
    : `errno ${errno}`
}

/**
 * What went wrong, without data values or secrets: the driver's or server's error code (SQLSTATE,
 * `SQLITE_BUSY`, `ECONNREFUSED`, `ER_DUP_ENTRY`; else a MariaDB error number), or for a client-side error without a code, its message (client-side
 * messages such as "Connection terminated unexpectedly" never quote parameters). Server messages are
 * left out: they can quote row values ("Key (subject)=(...) already exists").
 */
export const describeCause = (cause: unknown): string => {
  const code = codeOf(cause) ?? numberOf(cause)
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
