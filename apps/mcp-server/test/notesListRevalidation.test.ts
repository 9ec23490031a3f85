/**
 * The notes list against dev-idp's notes API (Nextcloud Notes v1 shape): it is asked for without the
 * notes' content, and kept per owner with its entity tag, so a repeat asks `If-None-Match` and a 304
 * answers with the kept list - never a list another owner was answered, and never one that changed.
 */
import { type DevIdp, startDevIdp } from "@token-broker/dev-idp"
import { Redacted } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { makeNotesApi } from "../src/internal/notesApi.js"

let idp: DevIdp
let alice: Redacted.Redacted<string>
let bob: Redacted.Redacted<string>

const tokenOf = async (username: string) => {
  const user = idp.users.find((u) => u.username === username)
  if (user === undefined) throw new Error(`dev-idp has no user ${username}`)
  const tokens = await idp.login({
    clientId: "token-broker",
    username: user.username,
    password: user.password,
    scopes: ["openid", "notes:read", "notes:write"]
  })
  return Redacted.make(tokens.access_token)
}

beforeAll(async () => {
  idp = await startDevIdp({ mcpAudience: "http://127.0.0.1:1/mcp" })
  alice = await tokenOf("alice")
  bob = await tokenOf("bob")
})
afterAll(() => idp.close())

describe("the notes list", () => {
  it("leaves out the content, and a repeat of an unchanged list is the kept one (304)", async () => {
    const api = makeNotesApi({ baseUrl: idp.notesApiUrl })
    const made = await api.create(alice, { title: "Plan", content: "A long text", category: "Work" })
    const first = await api.list(alice, { category: "Work" }, "alice")
    expect(first).toEqual([
      {
        id: made.id,
        etag: made.etag,
        readonly: false,
        title: "Plan",
        category: "Work",
        favorite: false,
        modified: made.modified
      }
    ])
    expect(Object.isFrozen(first)).toBe(true)
    // the same array: only a 304 gives it back (a 200 is parsed into a new one)
    expect(await api.list(alice, { category: "Work" }, "alice")).toBe(first)
    // without an owner nothing is kept
    const unkept = await api.list(alice, { category: "Work" })
    expect(unkept).toEqual(first)
    expect(unkept).not.toBe(first)

    // a change upstream: the kept tag no longer matches, and the new list is answered (and kept)
    const changed = await api.update(alice, made.id, { title: "Plan B" }, undefined)
    const second = await api.list(alice, { category: "Work" }, "alice")
    expect(second).not.toBe(first)
    expect(second).toEqual([expect.objectContaining({ title: "Plan B", etag: changed.etag })])
    expect(await api.list(alice, { category: "Work" }, "alice")).toBe(second)
    // each query is kept apart
    const all = await api.list(alice, {}, "alice")
    expect(all).not.toBe(second)
    expect(all.map((note) => note.id)).toContain(made.id)
    await api.close()
  })

  it("keeps each owner's list apart, and forgets the oldest beyond its bound", async () => {
    const api = makeNotesApi({ baseUrl: idp.notesApiUrl, rememberedLists: 1 })
    await api.create(bob, { title: "Bob's", content: "x" })
    const alices = await api.list(alice, {}, "alice")
    // bob's list is his own, whatever alice's kept tag is
    const bobs = await api.list(bob, {}, "bob")
    expect(bobs.map((note) => note.title)).toEqual(["Bob's"])
    expect(alices.map((note) => note.title)).not.toContain("Bob's")
    // one list kept: bob's pushed alice's out, so hers is asked for in full again
    const again = await api.list(alice, {}, "alice")
    expect(again).toEqual(alices)
    expect(again).not.toBe(alices)
    expect(await api.list(alice, {}, "alice")).toBe(again)
    await api.close()
  })

  it("a token the API refuses is refused as before, whatever list is kept", async () => {
    const api = makeNotesApi({ baseUrl: idp.notesApiUrl })
    await api.list(alice, {}, "alice")
    await expect(api.list(Redacted.make("not-a-token"), {}, "alice")).rejects.toMatchObject({
      status: 401,
      reason: "unauthorized"
    })
    await api.close()
  })
})
