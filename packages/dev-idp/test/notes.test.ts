import * as oauth from "openid-client"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type DevIdp, type Note, startDevIdp } from "../src/index.js"
import { bob, configFor, loginAlice } from "./helpers.js"

describe("notes API (Nextcloud Notes v1 shape)", () => {
  let idp: DevIdp
  let readWrite: string
  let readOnly: string

  const call = (path: string, init: RequestInit & { token?: string } = {}) => {
    const { token, headers, ...rest } = init
    return fetch(`${idp.notesApiUrl}${path}`, {
      ...rest,
      headers: {
        ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
        ...(rest.body === undefined ? {} : { "content-type": "application/json" }),
        ...(headers as Record<string, string> | undefined)
      }
    })
  }

  /** Creates a note with `input` as `token`'s user. */
  const create = (token: string, input: Record<string, unknown>) =>
    call("/notes", { token, method: "POST", body: JSON.stringify(input) })

  beforeAll(async () => {
    idp = await startDevIdp({ mcpAudience: "http://127.0.0.1:1/mcp" })
    readWrite = (await loginAlice(idp)).access_token
    readOnly = (await loginAlice(idp, { scopes: ["openid", "notes:read"] })).access_token
  })
  afterAll(() => idp.close())

  it("401 without a token, with a Bearer challenge", async () => {
    const response = await call("/notes")
    expect(response.status).toBe(401)
    expect(response.headers.get("www-authenticate")).toBe('Bearer realm="notes"')
  })

  it("401 invalid_token for garbage, an ID token, and a token for another audience", async () => {
    const login = await loginAlice(idp)
    const mcp = await loginAlice(idp, { resource: idp.mcpAudience! })
    const opaque = await loginAlice(idp, { resource: idp.opaqueAudience })
    for (const token of ["garbage", login.id_token!, mcp.access_token, opaque.access_token]) {
      const response = await call("/notes", { token })
      expect(response.status).toBe(401)
      expect(response.headers.get("www-authenticate")).toMatch(/^Bearer realm="notes", error="invalid_token"/)
    }
  })

  it("403 insufficient_scope for a write with a read-only token", async () => {
    const response = await create(readOnly, { content: "x" })
    expect(response.status).toBe(403)
    expect(response.headers.get("www-authenticate")).toContain(
      'error="insufficient_scope", scope="notes:write"'
    )
    expect((await call("/notes", { token: readOnly })).status).toBe(200)
  })

  it("create, read, update with If-Match (412 on a stale ETag), delete", async () => {
    const created = await create(readWrite, { title: "Groceries", content: "milk", category: "home" })
    expect(created.status).toBe(200)
    const note = (await created.json()) as Note
    expect(note).toMatchObject({ title: "Groceries", content: "milk", category: "home", favorite: false })
    expect(created.headers.get("etag")).toBe(`"${note.etag}"`)

    const list = (await (await call("/notes", { token: readWrite })).json()) as Note[]
    expect(list.map((n) => n.id)).toContain(note.id)

    const fetched = await call(`/notes/${note.id}`, { token: readOnly })
    expect(fetched.status).toBe(200)
    expect(fetched.headers.get("etag")).toBe(`"${note.etag}"`)

    const putIfMatch = (content: string) =>
      call(`/notes/${note.id}`, {
        token: readWrite,
        method: "PUT",
        headers: { "if-match": `"${note.etag}"` },
        body: JSON.stringify({ content })
      })
    const updated = await putIfMatch("milk, eggs")
    expect(updated.status).toBe(200)
    const after = (await updated.json()) as Note
    expect(after.content).toBe("milk, eggs")
    expect(after.title).toBe("Groceries")
    expect(after.etag).not.toBe(note.etag)

    const stale = await putIfMatch("lost update")
    expect(stale.status).toBe(412)
    expect(((await stale.json()) as Note).content).toBe("milk, eggs")

    expect((await call(`/notes/${note.id}`, { token: readWrite, method: "DELETE" })).status).toBe(200)
    expect((await call(`/notes/${note.id}`, { token: readWrite })).status).toBe(404)
  })

  it("keeps each user's notes apart (by the token's sub)", async () => {
    const created = (await (await create(readWrite, { content: "Private\nbody" })).json()) as Note
    expect(created.title).toBe("Private")
    const bobToken = (
      await idp.login({
        clientId: "token-broker",
        username: bob(idp).username,
        password: bob(idp).password,
        scopes: ["openid", "notes:read", "notes:write"]
      })
    ).access_token
    expect((await call(`/notes/${created.id}`, { token: bobToken })).status).toBe(404)
    expect(((await (await call("/notes", { token: bobToken })).json()) as Note[]).length).toBe(0)
  })

  it("GET /notes leaves out the fields named by exclude, and answers 304 to If-None-Match while the list is unchanged", async () => {
    const made = await create(readWrite, { title: "Listed", content: "Long text", category: "Lists" })
    expect(made.status).toBe(200)
    const full = await call("/notes?category=Lists", { token: readWrite })
    const etag = full.headers.get("etag")
    expect(etag).toMatch(/^"[0-9a-f]{32}"$/)
    const [note] = (await full.json()) as Note[]
    expect(note?.content).toBe("Long text")

    const slim = await call("/notes?category=Lists&exclude=content,title", { token: readWrite })
    const [summary] = (await slim.json()) as Array<Record<string, unknown>>
    expect(Object.keys(summary ?? {}).sort()).toEqual(
      ["category", "etag", "favorite", "id", "modified", "readonly"].sort()
    )
    // a list without some fields is another representation, with its own entity tag
    const slimTag = slim.headers.get("etag")
    expect(slimTag).not.toBe(etag)

    const counted = { ...idp.notes.listAnswers }
    const unchanged = await call("/notes?category=Lists", {
      token: readWrite,
      headers: { "if-none-match": etag ?? "" }
    })
    expect(unchanged.status).toBe(304)
    expect(idp.notes.listAnswers).toEqual({ ...counted, notModified: counted.notModified + 1 })
    expect(unchanged.headers.get("etag")).toBe(etag)
    expect(await unchanged.text()).toBe("")
    // the tag is checked only after the token: a stale or missing token is refused as before
    expect((await call("/notes", { headers: { "if-none-match": etag ?? "" } })).status).toBe(401)

    await call(`/notes/${note?.id}`, {
      token: readWrite,
      method: "PUT",
      body: JSON.stringify({ content: "Changed" })
    })
    const changed = await call("/notes?category=Lists", {
      token: readWrite,
      headers: { "if-none-match": etag ?? "" }
    })
    expect(changed.status).toBe(200)
    expect(changed.headers.get("etag")).not.toBe(etag)
    expect(((await changed.json()) as Note[])[0]?.content).toBe("Changed")
  })

  it("accepts a token obtained by token exchange, rejects 400 on an invalid body", async () => {
    const broker = await configFor(idp, "token-broker")
    const exchanged = await oauth.genericGrantRequest(
      broker,
      "urn:ietf:params:oauth:grant-type:token-exchange",
      {
        subject_token: readWrite,
        subject_token_type: "urn:ietf:params:oauth:token-type:access_token",
        audience: idp.notesAudience,
        scope: "notes:write"
      }
    )
    const bad = await create(exchanged.access_token, { title: 1 })
    expect(bad.status).toBe(400)
    const ok = await create(exchanged.access_token, { content: "via exchange" })
    expect(ok.status).toBe(200)
  })
})
