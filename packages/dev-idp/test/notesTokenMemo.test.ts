/**
 * The notes API remembers access tokens that verified (by their exact text) and skips their signature
 * check on a repeat request - but never past the token's `exp` by its clock, and never for a token that
 * differs from a remembered one in any character. The API is mounted on a server of the test's own, with
 * a signing key of its own and a clock the test moves.
 */
import { createServer, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { exportJWK, generateKeyPair, SignJWT } from "jose"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { NotesApi } from "../src/NotesApi.js"

const ISSUER = "http://issuer.test"
const AUDIENCE = "http://issuer.test/notes"
const T0 = Date.UTC(2026, 0, 1, 12, 0, 0)

describe("the notes API's memo of verified tokens", () => {
  let server: Server
  let url: string
  let now = T0
  let sign: (claims: { exp: number; sub?: string }) => Promise<string>

  beforeAll(async () => {
    const { publicKey, privateKey } = await generateKeyPair("RS256")
    const jwk = { ...(await exportJWK(publicKey)), kid: "k1", alg: "RS256" }
    sign = (claims) =>
      new SignJWT({ scope: "notes:read", ...claims })
        .setProtectedHeader({ alg: "RS256", kid: "k1", typ: "at+jwt" })
        .setIssuer(ISSUER)
        .setAudience(AUDIENCE)
        .setSubject(claims.sub ?? "alice")
        .setIssuedAt(Math.floor(T0 / 1000))
        .sign(privateKey)
    const api = new NotesApi({
      issuer: ISSUER,
      audience: AUDIENCE,
      jwks: { keys: [jwk] },
      basePath: "/api",
      now: () => now
    })
    server = createServer((req, res) => void api.handle(req, res, req.url ?? "/"))
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/notes`
  })
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())))

  const list = async (token: string) =>
    (await fetch(url, { headers: { authorization: `Bearer ${token}` } })).status

  it("serves a remembered token until its exp, then refuses it", async () => {
    now = T0
    const token = await sign({ exp: Math.floor(T0 / 1000) + 60 })
    expect(await list(token)).toBe(200)
    // remembered: still served within its lifetime
    now = T0 + 59_999
    expect(await list(token)).toBe(200)
    // at exp (jose's rule: exp must be after the current second) and after it, refused
    now = T0 + 60_000
    expect(await list(token)).toBe(401)
    now = T0 + 61_000
    expect(await list(token)).toBe(401)
  })

  it("never serves a token that differs from a remembered one", async () => {
    now = T0
    const token = await sign({ exp: Math.floor(T0 / 1000) + 600 })
    expect(await list(token)).toBe(200)
    // one character of the signature changed (in its middle: every bit of it counts, unlike the last
    // character's padding bits)
    const at = token.lastIndexOf(".") + 100
    const changed = `${token.slice(0, at)}${token[at] === "A" ? "B" : "A"}${token.slice(at + 1)}`
    expect(await list(changed)).toBe(401)
    expect(await list(`${token}x`)).toBe(401)
    expect(await list(token.slice(0, -1))).toBe(401)
    expect(await list(token)).toBe(200)
  })

  it("a token expired when first presented is refused", async () => {
    now = T0 + 3_600_000
    expect(await list(await sign({ exp: Math.floor(T0 / 1000) + 60 }))).toBe(401)
  })
})
