import { startDevIdp } from "@token-broker/dev-idp"
import { describe, expect, it } from "vitest"
import { tokenChecker } from "../chaos/harness.js"
import { suiteSetup } from "./support/suiteSetup.js"

// Controls of the chaos suite's per-serve check (issue 12): a deliberately wrong serve is caught.
const idp = suiteSetup(60_000, async (defer) => {
  const started = await startDevIdp()
  defer(() => started.close())
  return started
})

describe("chaos detectors: every sampled serve is checked", () => {
  it("a token served again after it expired, or from the store of a marked grant, is caught", async () => {
    const dev = await idp()
    const alice = dev.users[0]
    if (alice === undefined) throw new Error("dev-idp has no users")
    const tokens = await dev.login({
      clientId: "token-broker",
      username: alice.username,
      password: alice.password,
      scopes: ["openid", "offline_access", "notes:read", "notes:write"],
      resource: dev.notesAudience
    })
    const exp = (
      JSON.parse(Buffer.from(tokens.access_token.split(".")[1] ?? "", "base64url").toString()) as {
        exp: number
      }
    ).exp
    const checker = tokenChecker(dev)
    // a sound serve, then the same token checked again at two later serves
    checker.check(alice.sub, tokens.access_token, Date.now(), { source: "refresh", status: "active" })
    checker.check(alice.sub, tokens.access_token, Date.now(), {
      source: "cache",
      status: "reconsent_required"
    })
    const sound = await checker.settle()
    expect(sound.wrong).toEqual([])
    checker.check(alice.sub, tokens.access_token, exp * 1000 + 1_000, { source: "cache", status: "active" })
    checker.check(alice.sub, tokens.access_token, Date.now(), {
      source: "store",
      status: "reconsent_required"
    })
    const { checked, wrong } = await checker.settle()
    expect(checked).toBe(4)
    expect(wrong).toEqual([
      expect.stringMatching(/expired 1000 ms before it was served/),
      expect.stringMatching(/served from store while the grant read reconsent_required/)
    ])
  })
})
