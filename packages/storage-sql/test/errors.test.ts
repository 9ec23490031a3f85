import { SqlError } from "@effect/sql/SqlError"
import { describe, expect, it } from "@effect/vitest"
import { SqlGrantStore } from "../src/index.js"

const toStorage = SqlGrantStore.storageUnavailable("postgres", "GrantStore.insert")

describe("storageUnavailable", () => {
  it("names the backend, the operation and the driver's error code", () => {
    const cause = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" })
    const error = toStorage(new SqlError({ cause, message: "Failed to acquire connection" }))
    expect(error._tag).toBe("StorageUnavailable")
    expect(error.code).toBe("storage_unavailable")
    expect(error.operation).toBe("GrantStore.insert")
    expect(error.message).toBe(
      "postgres storage failed during GrantStore.insert: Failed to acquire connection (ECONNREFUSED)"
    )
  })

  it("never repeats a server message, which can quote row values", () => {
    const cause = Object.assign(new Error("duplicate key value: Key (subject)=(alice@example.com) exists"), {
      severity: "ERROR",
      detail: "Key (subject)=(alice@example.com) already exists."
    })
    const error = toStorage(new SqlError({ cause, message: "Failed to execute statement" }))
    expect(error.message).not.toContain("alice")
    expect(error.message).toContain("no error code")
    expect(error).not.toHaveProperty("cause", cause)
  })

  it("keeps a client-side message without a code (no parameters in it)", () => {
    const error = toStorage(
      new SqlError({ cause: new Error("Connection terminated unexpectedly"), message: "Connection error" })
    )
    expect(error.message).toContain("Connection terminated unexpectedly")
  })

  it("never repeats a MariaDB server message whose number the driver has no name for; names the number", () => {
    // mysql2 names MySQL's error numbers only: MariaDB's own (1969, max_statement_time) arrive without a
    // code, and their text may quote values like any server message
    const cause = Object.assign(new Error("Duplicate entry 'alice@example.com' for key 'PRIMARY'"), {
      errno: 1969,
      sqlState: "70100",
      sqlMessage: "Duplicate entry 'alice@example.com' for key 'PRIMARY'"
    })
    const error = SqlGrantStore.storageUnavailable(
      "mysql",
      "GrantStore.get"
    )(new SqlError({ cause, message: "Failed to execute statement" }))
    expect(error.message).not.toContain("alice")
    expect(error.message).toBe(
      "mysql storage failed during GrantStore.get: Failed to execute statement (errno 1969, SQLSTATE 70100)"
    )
  })
})
