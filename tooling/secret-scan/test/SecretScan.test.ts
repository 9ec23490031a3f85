import { randomBytes } from "node:crypto"
import { describe, expect, it } from "vitest"
import {
  type FindingKind,
  formatFindings,
  type KnownSecret,
  SecretList,
  scanForSecrets
} from "../src/SecretScan.js"

/** A secret with characters that every encoding changes: `+`, `/`, `=`, a space and a non-ASCII letter. */
const secret = `${randomBytes(18).toString("base64")} +/=é`
const list = new SecretList().add("test secret", secret)
const kinds = (text: string, secrets: Iterable<KnownSecret> = list) =>
  scanForSecrets(text, secrets).map((f) => f.kind)

/** A realistic log without any secret: what the scan must stay quiet about. */
const CLEAN = [
  '{"level":20,"time":1700000000000,"msg":"incoming request","req":{"method":"POST","path":"/oauth/token"}}',
  '{"level":30,"msg":"grant refreshed","grant_type":"refresh_token","provider":"notes","subject":"u-bob"}',
  '{"level":30,"headers":{"authorization":"[redacted]","www-authenticate":"Bearer resource_metadata=\\"http://127.0.0.1/.well-known/oauth-protected-resource/mcp\\", error=\\"invalid_token\\""}}',
  '{"level":40,"msg":"Send the caller credentials with HTTP Basic authentication","tokenType":"Bearer"}',
  '{"level":30,"refresh_token":"[redacted]","client_secret":"[redacted]","body":"grant_type=refresh_token&scope=notes%3Aread"}',
  '{"level":50,"msg":"WWW-Authenticate: Basic realm=\\"token-broker\\"","requestId":"3f9c2a17-5b1e-4c0d-9a8f-2e6b7d4c1a90"}'
].join("\n")

describe("scanForSecrets: each class of leak is caught (control)", () => {
  const bytes = Buffer.from(secret, "utf8")
  const samples: Array<[FindingKind, string]> = [
    ["raw", `{"msg":"token ${secret} refreshed"}`],
    ["url-encoded", `GET /callback?x=${encodeURIComponent(secret)}&y=1`],
    ["form-encoded", `body: a=1&b=${new URLSearchParams({ v: secret }).toString().slice(2)}`],
    // inside a longer encoding, at each byte alignment
    ["base64", `blob ${Buffer.concat([Buffer.from("id:"), bytes]).toString("base64")}`],
    [
      "base64url",
      `blob ${Buffer.concat([Buffer.from("ab"), bytes, Buffer.from("z")]).toString("base64url")}`
    ],
    ["hex", `dump ${bytes.toString("hex").toUpperCase()}`],
    ["substring", `token starts ${secret.slice(3, 3 + 14)}...`]
  ]
  it.each(samples)("a known secret, %s", (kind, text) => {
    const findings = scanForSecrets(text, list)
    expect(findings.map((f) => f.kind)).toContain(kind)
    // only the hint, never the secret, in the finding and in its report
    for (const finding of findings) expect(JSON.stringify(finding)).not.toContain(secret.slice(0, 12))
    expect(formatFindings(findings)).not.toContain(secret.slice(4, 12))
    expect(formatFindings(findings)).toContain(`${secret.slice(0, 4)}... (${kind}) test secret at line 1`)
  })

  it("base64 at all three alignments, and a key given as bytes (base64, base64url, hex)", () => {
    for (const prefix of ["", "a", "ab", "abc"]) {
      const text = Buffer.concat([Buffer.from(prefix), bytes, Buffer.from("tail")]).toString("base64")
      expect(kinds(text), `after ${prefix.length} bytes`).toContain("base64")
    }
    const key = randomBytes(32)
    const keys = new SecretList().add("key k1", key)
    expect(kinds(`k=${key.toString("base64")}`, keys)).toContain("base64")
    expect(kinds(`k=${key.toString("base64url")}`, keys)).toContain("base64url")
    expect(kinds(`k=${key.toString("hex")}`, keys)).toEqual(["hex"])
  })

  const credential = randomBytes(24).toString("base64url")
  const jwt = [
    Buffer.from('{"alg":"RS256","typ":"at+jwt"}').toString("base64url"),
    Buffer.from('{"sub":"u-alice","aud":"notes"}').toString("base64url"),
    randomBytes(32).toString("base64url")
  ].join(".")
  const patterns: Array<[FindingKind, string]> = [
    ["basic", `authorization: basic ${Buffer.from(`agent:${credential}`).toString("base64")}`],
    ["basic", `"Authorization":"BASIC ${Buffer.from("reader:x").toString("base64")}"`],
    ["bearer", `authorization: Bearer ${credential}`],
    ["bearer", `{"authorization":"bearer ${credential}=="}`],
    ["refresh_token=", `body grant_type=refresh_token&refresh_token=${credential}&scope=x`],
    ["refresh_token=", `{"refresh_token":"${credential}"}`],
    ["client_secret=", `client_id=agent&client_secret=${credential}`],
    ["jwt", `subject token ${jwt} refused`],
    ["jwt", `unsigned ${jwt.split(".").slice(0, 2).join(".")}.`]
  ]
  it.each(patterns)("a pattern, whatever the list: %s (sample %#)", (kind, text) => {
    const findings = scanForSecrets(text, [])
    expect(findings.map((f) => f.kind)).toEqual([kind])
    expect(formatFindings(findings)).not.toContain(credential.slice(0, 8))
  })

  it("a clean log yields no finding, with the secrets of the run on the list", () => {
    const secrets = new SecretList()
      .add("test secret", secret)
      .add("key", randomBytes(32))
      .add("caller secret", randomBytes(24).toString("base64url"))
    expect(scanForSecrets(CLEAN, secrets)).toEqual([])
    expect(formatFindings([])).toBe("no secret found")
  })

  it("counts occurrences and reports the first line", () => {
    const findings = scanForSecrets(`clean\nclean\nx ${secret}\ny ${secret}\n`, list)
    expect(findings).toEqual([
      { kind: "raw", hint: `${secret.slice(0, 4)}... (raw)`, label: "test secret", line: 3, count: 2 }
    ])
  })
})

describe("SecretList", () => {
  it("refuses a value too short to scan for, naming its label, not its value", () => {
    expect(() => new SecretList().add("client secret of notes", "")).toThrow(
      /secret "client secret of notes" is 0 characters long: too short to scan for \(at least 8\)/
    )
    expect(() => new SecretList().add("k", new Uint8Array(4))).toThrow(/is 4 bytes long/)
    expect(() => scanForSecrets("x", [{ label: "short", value: "abc" }])).toThrow(/"short" is too short/)
  })

  it("keeps each value once, with its first label, and counts by label", () => {
    const secrets = new SecretList().add("refresh token 1", "a".repeat(20)).add("again", "a".repeat(20))
    secrets.add("refresh token 2", "b".repeat(20)).add("verifier", "c".repeat(20))
    expect(secrets.size).toBe(3)
    expect(secrets.count("refresh token")).toBe(2)
    expect([...secrets].map((s) => s.label)).toEqual(["refresh token 1", "refresh token 2", "verifier"])
  })
})
