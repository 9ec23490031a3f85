import { describe, expect, it } from "vitest"
import {
  ACCESS_TOKEN_TYPE,
  plainTokenExchangeForm,
  TOKEN_EXCHANGE,
  TokenExchangeForm
} from "../src/Schemas.js"

/**
 * /oauth/token takes a form plainTokenExchangeForm passes without zod: it must never pass more than
 * TokenExchangeForm, and must read what zod reads.
 */
describe("plainTokenExchangeForm agrees with TokenExchangeForm", () => {
  const smile = "\ud83d\ude42"
  const variants: Record<string, ReadonlyArray<string | undefined>> = {
    grant_type: [TOKEN_EXCHANGE, undefined, "authorization_code"],
    subject_token: [
      "eyJ.token.sig",
      undefined,
      "",
      "a".repeat(16_384),
      "a".repeat(16_385),
      smile.repeat(8192),
      smile.repeat(8193)
    ],
    subject_token_type: [ACCESS_TOKEN_TYPE, undefined, "urn:ietf:params:oauth:token-type:id_token"],
    requested_token_type: [undefined, ACCESS_TOKEN_TYPE, "urn:ietf:params:oauth:token-type:refresh_token"],
    audience: [undefined, "", "notes", "a".repeat(2048), "a".repeat(2049), smile.repeat(1025)],
    resource: [undefined, "", "https://notes.example", "a".repeat(2049)],
    scope: [undefined, "", "notes:read notes:write", "a".repeat(4096), "a".repeat(4097)]
  }
  const extras: ReadonlyArray<ReadonlyArray<readonly [string, string]>> = [
    [],
    [
      ["client_id", "agent"],
      ["client_secret", "secret"]
    ],
    [
      ["__proto__", "x"],
      ["other", "y"]
    ]
  ]
  const forms: Array<Map<string, string>> = [new Map()]
  for (const [name, values] of Object.entries(variants)) {
    const next: Array<Map<string, string>> = []
    for (const form of forms)
      for (const value of values) next.push(value === undefined ? form : new Map([...form, [name, value]]))
    forms.splice(0, forms.length, ...next)
  }

  it("passes only forms zod accepts, reading the same values; every one zod accepts within its bounds in UTF-16 units", () => {
    let passed = 0
    for (const base of forms)
      for (const extra of extras) {
        const fields = new Map([...base, ...extra])
        const parameters = Object.fromEntries(
          [...fields].filter(([name]) => name !== "client_id" && name !== "client_secret")
        )
        const zod = TokenExchangeForm.safeParse(parameters)
        const plain = plainTokenExchangeForm(fields)
        const withinUnits =
          (fields.get("subject_token") ?? "").length <= 16_384 &&
          (fields.get("audience") ?? "").length <= 2048 &&
          (fields.get("resource") ?? "").length <= 2048 &&
          (fields.get("scope") ?? "").length <= 4096
        const form = Object.fromEntries([...fields].map(([name, value]) => [name, value.slice(0, 24)]))
        if (plain !== undefined) {
          passed += 1
          expect({ form, zod: zod.success }).toEqual({ form, zod: true })
          expect(plain).toEqual(zod.data)
          expect(Object.keys(plain).sort()).toEqual(Object.keys(zod.data ?? {}).sort())
        } else {
          expect({ form, zodAcceptsWithinUnits: zod.success && withinUnits }).toEqual({
            form,
            zodAcceptsWithinUnits: false
          })
        }
      }
    expect(passed).toBeGreaterThan(100)
  })
})
