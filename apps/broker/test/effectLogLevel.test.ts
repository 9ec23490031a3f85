import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import { LogCapture, startStack } from "./support/stack.js"

describe("core's own log lines follow server.logLevel", () => {
  it.each([
    ["debug", true],
    ["info", false]
  ] as const)("at %s, a debug line from the runtime is written: %s", async (logLevel, written) => {
    const logs = new LogCapture()
    const stack = await startStack({ backend: "sqlite", logLevel, logStream: logs })
    try {
      await stack.broker.runWithKeyRing(Effect.logDebug("a debug line of the runtime"))
      await stack.broker.runWithKeyRing(Effect.logInfo("an info line of the runtime"))
      const text = logs.text()
      expect(text).toContain("an info line of the runtime")
      expect(text.includes("a debug line of the runtime")).toBe(written)
    } finally {
      await stack.stop()
    }
  })
})
