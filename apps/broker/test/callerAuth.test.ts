import { type CallerPolicy, hashSecret } from "@token-broker/config"
import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import { makeCallerAuth } from "../src/Callers.js"

const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString("base64")}`

describe("remembered caller credentials", () => {
  it("a Basic header is remembered only once its credentials verified, and only that exact header", async () => {
    const secret = "s3cret-of-the-agent"
    const agent: CallerPolicy = {
      id: "agent",
      secretHash: await Effect.runPromise(hashSecret(secret)),
      tenant: "default",
      providers: ["*"],
      subjects: ["*"],
      scopes: ["*"],
      backgroundTokens: true,
      tokenExchange: true,
      subjectTokens: { clientIds: [], audiences: [] },
      grants: "none"
    }
    const auth = makeCallerAuth([agent], {
      maxFailures: 100,
      failureWindowMs: 60_000,
      maxConcurrent: 2,
      maxQueued: 10
    })
    const header = basic("agent", secret)
    expect(auth.rememberedBasic(header)).toBeUndefined()
    // a refusal remembers nothing
    const wrong = basic("agent", `${secret}x`)
    expect((await auth.authenticate("agent", `${secret}x`, "127.0.0.1", wrong))._tag).toBe("Refused")
    expect(auth.rememberedBasic(wrong)).toBeUndefined()
    // credentials from a form (no header) are remembered by credentials only
    expect((await auth.authenticate("agent", secret, "127.0.0.1"))._tag).toBe("Authenticated")
    expect(auth.rememberedBasic(header)).toBeUndefined()
    // from the header: that header is remembered, another spelling of it or another secret is not
    expect((await auth.authenticate("agent", secret, "127.0.0.1", header))._tag).toBe("Authenticated")
    expect(auth.rememberedBasic(header)?.id).toBe("agent")
    expect(auth.rememberedBasic(header.replace("Basic", "basic"))).toBeUndefined()
    expect(auth.rememberedBasic(wrong)).toBeUndefined()
  })
})
