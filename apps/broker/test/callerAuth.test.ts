import { type CallerPolicy, hashSecret } from "@token-broker/config"
import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import { MAX_REMEMBERED_HEADER, MAX_REMEMBERED_HEADERS, makeCallerAuth } from "../src/Callers.js"

const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString("base64")}`

const secret = "s3cret-of-the-agent"

const makeAgentAuth = async () => {
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
  return makeCallerAuth([agent], {
    maxFailures: 100,
    failureWindowMs: 60_000,
    maxConcurrent: 2,
    maxQueued: 10
  })
}

describe("remembered caller credentials", () => {
  it("a Basic header is remembered only once its credentials verified, and only that exact header", async () => {
    const auth = await makeAgentAuth()
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

  it("remembers a bounded number of headers, the oldest forgotten first, and none longer than the bound", async () => {
    const auth = await makeAgentAuth()
    // the header as the route passes it along with the credentials decoded from it; its spelling varies
    // here (padding the route's parser would refuse does not matter to the memo)
    const header = (n: number) => `${basic("agent", secret)}${".".repeat(n)}`
    for (let n = 0; n <= MAX_REMEMBERED_HEADERS; n++)
      expect((await auth.authenticate("agent", secret, "127.0.0.1", header(n)))._tag).toBe("Authenticated")
    expect(auth.rememberedBasic(header(0)), "the oldest is forgotten").toBeUndefined()
    expect(auth.rememberedBasic(header(1))?.id).toBe("agent")
    expect(auth.rememberedBasic(header(MAX_REMEMBERED_HEADERS))?.id).toBe("agent")
    // a header remembered again is the newest: the next one forgets another
    expect((await auth.authenticate("agent", secret, "127.0.0.1", header(1)))._tag).toBe("Authenticated")
    expect((await auth.authenticate("agent", secret, "127.0.0.1", header(0)))._tag).toBe("Authenticated")
    expect(auth.rememberedBasic(header(1))?.id).toBe("agent")
    expect(auth.rememberedBasic(header(2))).toBeUndefined()
    // too long to be remembered: it authenticates, through the credentials' memo, every time
    const long = `${basic("agent", secret)}${"=".repeat(MAX_REMEMBERED_HEADER)}`
    expect((await auth.authenticate("agent", secret, "127.0.0.1", long))._tag).toBe("Authenticated")
    expect(auth.rememberedBasic(long)).toBeUndefined()
    const longest = long.slice(0, MAX_REMEMBERED_HEADER)
    expect((await auth.authenticate("agent", secret, "127.0.0.1", longest))._tag).toBe("Authenticated")
    expect(auth.rememberedBasic(longest)?.id).toBe("agent")
  })

  it("a wrong secret is never found, however close to a remembered header", async () => {
    const auth = await makeAgentAuth()
    const header = basic("agent", secret)
    expect((await auth.authenticate("agent", secret, "127.0.0.1", header))._tag).toBe("Authenticated")
    expect(auth.rememberedBasic(header)?.id).toBe("agent")
    for (const other of [
      basic("agent", secret.slice(0, -1)),
      basic("agent", `${secret.slice(0, -1)}X`),
      basic("agent", `${secret}x`),
      basic("agent", ""),
      header.slice(0, -1),
      `${header} `,
      header.toLowerCase(),
      header.replace("Basic ", "Basic  ")
    ])
      expect(auth.rememberedBasic(other)).toBeUndefined()
  })
})
