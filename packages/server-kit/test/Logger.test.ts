import { pino } from "pino"
import { describe, expect, it } from "vitest"
import { makeLogger, REDACT_PATHS } from "../src/Logger.js"
import { secretsReachingTheLog } from "../src/testing.js"

describe("the servers' logger", () => {
  it("redacts every secret field, at the top of a line, one level down and in request headers", () => {
    expect(secretsReachingTheLog((stream) => makeLogger({ level: "info", service: "test", stream }))).toEqual(
      []
    )
  })

  it("the check names a field missing from the redaction list (control)", () => {
    const withoutPassword = REDACT_PATHS.filter((path) => !path.endsWith("password"))
    const leaked = secretsReachingTheLog((stream) =>
      pino({ level: "info", redact: { paths: withoutPassword, censor: "[redacted]" } }, stream)
    )
    expect(leaked).toEqual(["password", "upstream.password"])
  })
})
