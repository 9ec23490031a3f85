import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js"
import { Client } from "@modelcontextprotocol/sdk/client/index.js"
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js"
import {
  type CallToolResult,
  ElicitationCompleteNotificationSchema,
  ElicitRequestSchema
} from "@modelcontextprotocol/sdk/types.js"
import { formatFindings, scanForSecrets } from "@token-broker/secret-scan"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Browser, launchBrowser } from "./browser.js"
import { MemoryOAuthProvider } from "./oauthProvider.js"
import { ALL_SCOPES, type Stack, startStack, type TokenSourceKind } from "./stack.js"

const text = (result: CallToolResult): string =>
  result.content.map((c) => (c.type === "text" ? c.text : "")).join("\n")

const callTool = async (client: Client, name: string, args: Record<string, unknown> = {}) =>
  (await client.callTool({ name, arguments: args })) as CallToolResult

const connect = async (stack: Stack, token: string, capabilities: Record<string, unknown> = {}) => {
  const client = new Client({ name: "e2e", version: "1.0.0" }, { capabilities })
  const transport = new StreamableHTTPClientTransport(new URL(stack.mcpUrl), {
    requestInit: { headers: { authorization: `Bearer ${token}` } }
  })
  await client.connect(transport)
  return { client, transport }
}

const post = (stack: Stack, body: unknown, headers: Record<string, string> = {}) =>
  fetch(stack.mcpUrl, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      ...headers
    },
    body: JSON.stringify(body)
  })

const INITIALIZE = {
  jsonrpc: "2.0",
  id: 1,
  method: "initialize",
  params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "raw", version: "1" } }
}

/** The authorization parameters of a `WWW-Authenticate: Bearer ...` header. */
const challengeOf = (response: Response): Record<string, string> => {
  const header = response.headers.get("www-authenticate") ?? ""
  expect(header).toMatch(/^Bearer /)
  return Object.fromEntries([...header.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]))
}

/**
 * The MCP server end to end, with the SDK's own client, dev-idp and headless Chromium. Every token
 * source runs it unchanged.
 */
export const mcpServerSuite = (kind: TokenSourceKind) =>
  describe(`MCP server (${kind} token source)`, () => {
    let stack: Stack
    let browser: Browser

    /** A tool call; the grants' stored tokens go on the scan's list before a disconnect and after each call. */
    const call = async (client: Client, name: string, args: Record<string, unknown> = {}) => {
      if (name === "disconnect_provider") await stack.rememberStored()
      const result = await callTool(client, name, args)
      await stack.rememberStored()
      return result
    }

    beforeAll(async () => {
      ;[stack, browser] = await Promise.all([startStack(kind), launchBrowser()])
    })
    afterAll(async () => {
      await browser?.close()
      await stack?.stop()
    })

    const tokenFor = (username: string, scopes?: ReadonlyArray<string>, audience?: string) =>
      stack.tokenFor(username, scopes, audience)

    describe("as a protected resource", () => {
      it("serves RFC 9728 metadata naming dev-idp and this resource", async () => {
        for (const path of [
          "/.well-known/oauth-protected-resource/mcp",
          "/.well-known/oauth-protected-resource"
        ]) {
          const response = await fetch(new URL(path, stack.mcpUrl))
          expect(response.status).toBe(200)
          expect(await response.json()).toMatchObject({
            resource: stack.mcpUrl,
            authorization_servers: [stack.idp.issuer],
            scopes_supported: ALL_SCOPES,
            bearer_methods_supported: ["header"]
          })
        }
      })

      it("answers 401 with resource_metadata and scope when no token is sent", async () => {
        const response = await post(stack, INITIALIZE)
        expect(response.status).toBe(401)
        const params = challengeOf(response)
        expect(params.resource_metadata).toBe(
          new URL("/.well-known/oauth-protected-resource/mcp", stack.mcpUrl).href
        )
        expect(params.scope).toBe(ALL_SCOPES.join(" "))
        expect(params.error).toBeUndefined()
        const get = await fetch(stack.mcpUrl)
        expect(get.status).toBe(401)
      })

      it("refuses a token for another audience, an ID token, an expired token and garbage with 401 invalid_token", async () => {
        const alice = stack.user("alice")
        const otherAudience = (
          await stack.idp.login({
            clientId: "mcp-client",
            username: alice.username,
            password: alice.password,
            scopes: ["openid", "notes:read"],
            resource: stack.idp.notesAudience
          })
        ).access_token
        stack.secrets.add("alice's token for the notes API", otherAudience)
        const idToken = (
          await stack.idp.login({
            clientId: "mcp-client",
            username: alice.username,
            password: alice.password,
            scopes: ["openid", ...ALL_SCOPES],
            resource: stack.mcpUrl
          })
        ).id_token
        expect(idToken).toBeTypeOf("string")
        stack.secrets.add("alice's ID token", idToken ?? "")
        // a resource whose tokens live 1 s, for one token, then back to the default
        stack.idp.addResource({ audience: stack.mcpUrl, scopes: ALL_SCOPES, accessTokenTtlSeconds: 1 })
        const expired = await tokenFor("alice").finally(() =>
          stack.idp.addResource({ audience: stack.mcpUrl, scopes: ALL_SCOPES })
        )
        await new Promise((r) => setTimeout(r, 2_100))
        const cases: Array<[string, string, RegExp]> = [
          ["other audience", otherAudience, /not for this resource/],
          ["ID token", idToken ?? "", /./],
          ["expired", expired, /expired/i],
          ["garbage", "not.a.jwt", /./]
        ]
        for (const [name, token, description] of cases) {
          const response = await post(stack, INITIALIZE, { authorization: `Bearer ${token}` })
          expect(response.status, name).toBe(401)
          const params = challengeOf(response)
          expect(params.error, name).toBe("invalid_token")
          expect(params.resource_metadata, name).toContain("/.well-known/oauth-protected-resource/mcp")
          expect(params.scope, name).toBe(ALL_SCOPES.join(" "))
          expect(params.error_description, name).toMatch(description)
        }
      })

      it("answers 403 insufficient_scope naming the scope a tool needs", async () => {
        const readOnly = await tokenFor("alice", ["mcp:tools", "notes:read"])
        const call = {
          jsonrpc: "2.0",
          id: 2,
          method: "tools/call",
          params: { name: "notes_create", arguments: { content: "x" } }
        }
        const response = await post(stack, call, { authorization: `Bearer ${readOnly}` })
        expect(response.status).toBe(403)
        const params = challengeOf(response)
        expect(params.error).toBe("insufficient_scope")
        expect(params.scope).toBe("mcp:tools notes:read notes:write")
        // reading is allowed with that token
        const { client } = await connect(stack, readOnly)
        expect((await client.listTools()).tools.length).toBeGreaterThan(0)
        await client.close()
        // without mcp:tools nothing is
        const notesOnly = await tokenFor("alice", ["notes:read"])
        const refused = await post(stack, INITIALIZE, { authorization: `Bearer ${notesOnly}` })
        expect(refused.status).toBe(403)
        expect(challengeOf(refused).scope).toBe("mcp:tools notes:read")
      })

      it("keeps a session to the subject that opened it", async () => {
        const { client, transport } = await connect(stack, await tokenFor("alice"))
        const bob = await tokenFor("bob")
        const response = await post(
          stack,
          { jsonrpc: "2.0", id: 3, method: "tools/list", params: {} },
          {
            authorization: `Bearer ${bob}`,
            "mcp-session-id": transport.sessionId ?? "",
            "mcp-protocol-version": "2025-11-25"
          }
        )
        expect(response.status).toBe(404)
        await client.close()
      })
    })

    describe("tools", () => {
      it("lists the tools with annotations and input schemas", async () => {
        const { client } = await connect(stack, await tokenFor("alice"))
        const { tools } = await client.listTools()
        const byName = new Map(tools.map((t) => [t.name, t]))
        expect([...byName.keys()].sort()).toEqual([
          "connect_provider",
          "connection_status",
          "disconnect_provider",
          "notes_create",
          "notes_delete",
          "notes_get",
          "notes_list",
          "notes_update"
        ])
        expect(byName.get("notes_list")?.annotations).toMatchObject({ readOnlyHint: true })
        expect(byName.get("connection_status")?.annotations).toMatchObject({ readOnlyHint: true })
        expect(byName.get("notes_delete")?.annotations).toMatchObject({
          readOnlyHint: false,
          destructiveHint: true
        })
        expect(byName.get("disconnect_provider")?.annotations).toMatchObject({ destructiveHint: true })
        expect(byName.get("notes_create")?.annotations).toMatchObject({ destructiveHint: false })
        expect(byName.get("connect_provider")?.inputSchema.required).toEqual(["provider"])
        expect(byName.get("notes_get")?.inputSchema.properties).toHaveProperty("id")
        await client.close()
      })

      it("explains invalid input", async () => {
        const { client } = await connect(stack, await tokenFor("alice"))
        const notNumber = await call(client, "notes_get", { id: "seven" })
        expect(notNumber.isError).toBe(true)
        expect(text(notNumber)).toMatch(/id must be a number/)
        const unknownProvider = await call(client, "connect_provider", { provider: "dropbox" })
        expect(unknownProvider.isError).toBe(true)
        expect(text(unknownProvider)).toMatch(/provider must be one of: notes, notes-exchange/)
        const nothing = await call(client, "notes_update", { id: 1 })
        expect(nothing.isError).toBe(true)
        expect(text(nothing)).toMatch(/Nothing to update/)
        await client.close()
      })

      it("progressive consent: consent-required with a link, Chromium consent, notes work, disconnect asks again", async () => {
        const { client } = await connect(stack, await tokenFor("alice"))
        const before = await call(client, "connection_status")
        expect(before.structuredContent?.providers).toContainEqual(
          expect.objectContaining({ provider: "notes", connected: false })
        )

        const refused = await call(client, "notes_list")
        expect(refused.isError).toBe(true)
        expect(text(refused)).toMatch(/^Consent required/)
        const link = refused.structuredContent?.authorizationUrl as string
        expect(refused.structuredContent).toMatchObject({ status: "consent_required", provider: "notes" })
        expect(text(refused)).toContain(link)
        expect(new URL(link).origin).toBe(stack.idp.issuer)

        await stack.rememberPending(link)
        const page = await browser.consent(link, stack.user("alice"))
        expect(page.url.startsWith(stack.callbackUrl)).toBe(true)
        expect(page.text).toMatch(/Connected/)

        const status = await call(client, "connection_status")
        const notes = (status.structuredContent!.providers as Array<Record<string, unknown>>).find(
          (p) => p.provider === "notes"
        )
        expect(notes).toMatchObject({ connected: true, status: "active", mode: "background" })
        expect(notes?.scopes).toEqual(expect.arrayContaining(["notes:read", "notes:write"]))
        expect(Date.parse(notes?.accessTokenExpiresAt as string)).toBeGreaterThan(Date.now())
        expect(notes?.lastRefreshedAt).toBeTypeOf("string")

        const created = await call(client, "notes_create", {
          content: "Buy milk\nand bread",
          category: "Home"
        })
        expect(created.isError).toBeFalsy()
        const note = created.structuredContent?.note as { id: number; title: string; etag: string }
        expect(note.title).toBe("Buy milk")
        const list = await call(client, "notes_list", { category: "Home" })
        expect(text(list)).toContain(`#${note.id} Buy milk [Home]`)
        // the category filter reaches the notes API; a repeat is the same list, which the API confirmed
        // with a 304 to the entity tag the server kept
        const work = await call(client, "notes_create", { content: "Call Anna", category: "Work" })
        expect(work.isError).toBeFalsy()
        const answers = { ...stack.idp.notes.listAnswers }
        const listedAgain = await call(client, "notes_list", { category: "Home" })
        expect(listedAgain).toStrictEqual(list)
        expect(stack.idp.notes.listAnswers).toEqual({ ...answers, notModified: answers.notModified + 1 })
        expect(text(await call(client, "notes_list"))).toMatch(/Buy milk \[Home\][\s\S]*Call Anna \[Work\]/)
        const got = await call(client, "notes_get", { id: note.id })
        expect(text(got)).toContain("and bread")
        const updated = await call(client, "notes_update", {
          id: note.id,
          content: "Buy oat milk",
          etag: note.etag
        })
        expect(updated.isError).toBeFalsy()
        // a list kept for revalidation is never served stale: the change (a new etag) shows at once
        const changedEtag = (updated.structuredContent as { note: { etag: string } }).note.etag
        expect(changedEtag).not.toBe(note.etag)
        expect((await call(client, "notes_list", { category: "Home" })).structuredContent).toEqual({
          notes: [expect.objectContaining({ id: note.id, etag: changedEtag })]
        })
        const stale = await call(client, "notes_update", { id: note.id, content: "again", etag: note.etag })
        expect(stale.isError).toBe(true)
        expect(text(stale)).toMatch(/changed since the given etag/)
        expect(stale.structuredContent).toMatchObject({ httpStatus: 412, reason: "conflict" })
        expect((await call(client, "notes_delete", { id: note.id })).isError).toBeFalsy()
        const gone = await call(client, "notes_get", { id: note.id })
        expect(gone.isError).toBe(true)
        expect(text(gone)).toMatch(/No such note/)
        // bob's notes are his own: he has not connected
        const { client: bobClient } = await connect(stack, await tokenFor("bob"))
        expect((await call(bobClient, "notes_list")).structuredContent?.status).toBe("consent_required")
        await bobClient.close()

        const disconnected = await call(client, "disconnect_provider", { provider: "notes" })
        expect(disconnected.structuredContent).toMatchObject({ removed: true, upstream: "revoked" })
        const again = await call(client, "notes_list")
        expect(again.structuredContent?.status).toBe("consent_required")
        const after = await call(client, "connection_status")
        expect(after.structuredContent?.providers).toContainEqual(
          expect.objectContaining({ provider: "notes", connected: false })
        )
        await client.close()
      })

      it("says why when the provider refuses: a dead grant asks for consent again, an outage says try later", async () => {
        const { client } = await connect(stack, await tokenFor("alice"))
        const consentVia = async (result: CallToolResult) => {
          const link = result.structuredContent?.authorizationUrl as string
          await stack.rememberPending(link)
          const redirect = await stack.idp.driveAuthorization(link, stack.user("alice"))
          expect((await fetch(redirect)).status).toBe(200)
        }
        await consentVia(await call(client, "connect_provider", { provider: "notes" }))

        stack.idp.faults.inject({ kind: "invalid_grant", grantType: "refresh_token" })
        const dead = await call(client, "notes_list")
        expect(dead.structuredContent?.status).toBe("consent_required")
        expect(text(dead)).toMatch(/must be renewed \(invalid_grant\)/)
        await consentVia(dead)

        stack.idp.faults.inject({ kind: "status", status: 503, count: 10, grantType: "refresh_token" })
        const down = await call(client, "notes_list")
        stack.idp.faults.clear()
        expect(down.isError).toBe(true)
        expect(down.structuredContent).toMatchObject({ status: "error", code: "upstream_unavailable" })
        expect(text(down)).toMatch(/cannot be reached right now/)

        expect((await call(client, "notes_list")).isError).toBeFalsy()
        expect(
          (await call(client, "disconnect_provider", { provider: "notes" })).structuredContent?.removed
        ).toBe(true)
        await client.close()
      })

      it("binds consent to the signed-in subject: bob cannot complete alice's consent", async () => {
        const { client } = await connect(stack, await tokenFor("alice"))
        const started = await call(client, "connect_provider", { provider: "notes" })
        expect(started.structuredContent).toMatchObject({ status: "pending", delivery: "link" })
        await stack.rememberPending(started.structuredContent?.authorizationUrl as string)
        const redirect = await stack.idp.driveAuthorization(
          started.structuredContent?.authorizationUrl as string,
          stack.user("bob")
        )
        const callback = await fetch(redirect)
        expect(callback.status).toBeGreaterThanOrEqual(400)
        const status = await call(client, "connection_status")
        expect(status.structuredContent?.providers).toContainEqual(
          expect.objectContaining({ provider: "notes", connected: false })
        )
        await client.close()
      })

      it("connect_provider uses URL-mode elicitation where the client declares it, and tells when consent completed", async () => {
        const { client } = await connect(stack, await tokenFor("alice"), { elicitation: { url: {} } })
        let elicited: { url: string; elicitationId: string } | undefined
        client.setRequestHandler(ElicitRequestSchema, async (request) => {
          const params = request.params
          if (params.mode !== "url") return { action: "decline" }
          elicited = { url: params.url, elicitationId: params.elicitationId }
          return { action: "accept" }
        })
        const completed = new Promise<string>((resolve) =>
          client.setNotificationHandler(ElicitationCompleteNotificationSchema, (n) =>
            resolve(n.params.elicitationId)
          )
        )
        const result = await call(client, "connect_provider", { provider: "notes" })
        expect(result.structuredContent).toMatchObject({ status: "pending", delivery: "elicitation" })
        expect(elicited?.url).toMatch(new RegExp(`^${stack.idp.issuer}/`))
        await stack.rememberPending(elicited?.url ?? "")
        const redirect = await stack.idp.driveAuthorization(elicited?.url ?? "", stack.user("alice"))
        expect((await fetch(redirect)).status).toBe(200)
        expect(await completed).toBe(elicited?.elicitationId)
        const listed = await call(client, "notes_list")
        expect(listed.isError).toBeFalsy()
        expect(
          (await call(client, "disconnect_provider", { provider: "notes" })).structuredContent?.removed
        ).toBe(true)
        await client.close()
      })

      it("uses RFC 8693 session tokens for a provider configured for exchange: no consent, no stored grant", async () => {
        const { client } = await connect(stack, await tokenFor("alice"))
        const status = await call(client, "connection_status")
        expect(status.structuredContent?.providers).toContainEqual(
          expect.objectContaining({ provider: "notes-exchange", mode: "session", connected: true })
        )
        const connectAnswer = await call(client, "connect_provider", { provider: "notes-exchange" })
        expect(connectAnswer.structuredContent).toMatchObject({ status: "not_needed" })
        await client.close()

        // the second server's notes tools run on exchanged tokens: alice never consented there
        const token = await tokenFor("alice", ALL_SCOPES, stack.exchangeMcpUrl)
        const exchanging = new Client({ name: "e2e", version: "1.0.0" })
        await exchanging.connect(
          new StreamableHTTPClientTransport(new URL(stack.exchangeMcpUrl), {
            requestInit: { headers: { authorization: `Bearer ${token}` } }
          })
        )
        const created = await call(exchanging, "notes_create", { content: "From a session token" })
        expect(created.isError, text(created)).toBeFalsy()
        const id = (created.structuredContent!.note as { id: number }).id
        expect(text(await call(exchanging, "notes_get", { id }))).toContain("From a session token")
        expect((await call(exchanging, "notes_delete", { id })).isError).toBeFalsy()
        await exchanging.close()
      })
    })

    it("signs in from scratch with the SDK client's own OAuth support", async () => {
      // the MCP client's loopback redirect URI, as a desktop client has it
      const codes: Array<string> = []
      const loopback = createServer((req, res) => {
        const code = new URL(req.url ?? "/", "http://127.0.0.1").searchParams.get("code")
        if (code !== null) codes.push(code)
        res
          .writeHead(200, { "content-type": "text/html" })
          .end("<p>Signed in; you can close this window.</p>")
      })
      await new Promise<void>((r) => loopback.listen(0, "127.0.0.1", r))
      const port = (loopback.address() as AddressInfo).port
      try {
        const provider = new MemoryOAuthProvider(`http://127.0.0.1:${port}/oauth/callback`)
        const transport = new StreamableHTTPClientTransport(new URL(stack.mcpUrl), { authProvider: provider })
        const client = new Client({ name: "e2e-oauth", version: "1.0.0" })
        await expect(client.connect(transport)).rejects.toBeInstanceOf(UnauthorizedError)
        // it read our metadata, registered at dev-idp and asked for our resource and scopes
        const authorizationUrl = provider.authorizationUrl
        expect(authorizationUrl?.origin).toBe(stack.idp.issuer)
        expect(authorizationUrl?.searchParams.get("resource")).toBe(stack.mcpUrl)
        expect(authorizationUrl?.searchParams.get("scope")).toBe(ALL_SCOPES.join(" "))
        expect(provider.clientInformation()?.client_id).toBeTypeOf("string")

        const page = await browser.consent(authorizationUrl?.href ?? "", stack.user("alice"))
        expect(page.text).toMatch(/Signed in/)
        expect(codes).toHaveLength(1)
        stack.secrets.add("the SDK client's PKCE code verifier", provider.codeVerifier())
        stack.secrets.add("the SDK client's authorization code", codes[0] ?? "")
        await transport.finishAuth(codes[0] ?? "")
        stack.secrets.add("the SDK client's access token", provider.tokens()?.access_token ?? "")
        const refreshToken = provider.tokens()?.refresh_token
        if (refreshToken !== undefined) stack.secrets.add("the SDK client's refresh token", refreshToken)

        const signedIn = new Client({ name: "e2e-oauth", version: "1.0.0" })
        await signedIn.connect(
          new StreamableHTTPClientTransport(new URL(stack.mcpUrl), { authProvider: provider })
        )
        const status = await call(signedIn, "connection_status")
        expect(status.structuredContent?.subject).toBe(stack.user("alice").sub)
        await signedIn.close()
      } finally {
        loopback.close()
      }
    })

    it("never logs a secret of the run in any encoding, nor any credential (F19)", async () => {
      await stack.rememberStored()
      const logs = stack.logs.text()
      expect(logs.length).toBeGreaterThan(0)
      // the list holds what the suite handled, the stored refresh tokens and consents' verifiers among it
      for (const label of [
        "refresh token of",
        "PKCE code verifier of",
        "user token of",
        "client secret of"
      ]) {
        expect(stack.secrets.count(label), label).toBeGreaterThan(0)
      }
      for (const [what, text] of [
        ["the MCP servers' logs", logs],
        ["the broker process's output", stack.brokerOutput()]
      ] as const) {
        const findings = scanForSecrets(text, stack.secrets)
        expect(findings, `${what}: ${formatFindings(findings)}`).toEqual([])
      }
      expect(logs).not.toMatch(/[?&](code|state)=/)
    })
  })
