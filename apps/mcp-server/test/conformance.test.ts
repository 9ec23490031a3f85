import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  CONFORMANCE_VERSION,
  ensureToolchain,
  runScenario,
  startAuthProxy,
  type Toolchain
} from "./support/conformance.js"
import { type Stack, startStack } from "./support/stack.js"

/**
 * The official MCP conformance suite's server scenarios that apply to this server (tools only, no
 * prompts, resources, logging or sampling), run against it through an auth-adding proxy.
 */
const SCENARIOS = [
  "server-initialize",
  "ping",
  "tools-list",
  "server-sse-multiple-streams",
  "dns-rebinding-protection"
]

describe(`MCP conformance suite ${CONFORMANCE_VERSION}`, () => {
  let stack: Stack
  let toolchain: Toolchain
  let proxy: Awaited<ReturnType<typeof startAuthProxy>>
  beforeAll(async () => {
    ;[stack, toolchain] = await Promise.all([startStack("in-process"), ensureToolchain()])
    proxy = await startAuthProxy(stack.mcpUrl, await stack.tokenFor("alice"))
  }, 300_000)
  afterAll(async () => {
    await proxy?.close()
    await stack?.stop()
  })

  for (const scenario of SCENARIOS) {
    it(scenario, async () => {
      const result = await runScenario(toolchain, proxy.url, scenario)
      expect(result.checks.length, result.output).toBeGreaterThan(0)
      const failed = result.checks.filter((check) => check.status !== "SUCCESS" && check.status !== "INFO")
      expect(failed, result.output).toEqual([])
    }, 120_000)
  }
})
