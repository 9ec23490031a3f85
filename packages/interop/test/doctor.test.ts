import { join } from "node:path"
import type { ConfigFileInput } from "@token-broker/config"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { runDoctor } from "./support/doctor.js"
import { type InteropStack, startInteropStack } from "./support/stack.js"

type Provider = NonNullable<ConfigFileInput["providers"]>[number]

describe("token-broker doctor against Glewlwyd 2.7.5", () => {
  let stack: InteropStack
  beforeAll(async () => {
    stack = await startInteropStack({
      clientAuthentication: (clientSecret) => ({
        method: "client_secret_basic",
        clientSecret,
        encoding: "plain"
      })
    })
  })
  afterAll(async () => {
    await stack?.stop()
  })

  /** The stack's own config with its provider changed. */
  const variant = (change: (provider: Provider) => Provider): ConfigFileInput => {
    const [provider] = stack.configFile.providers ?? []
    if (provider === undefined) throw new Error("the stack has no provider")
    return { ...stack.configFile, providers: [change(provider)] }
  }
  const doctor = (name: string, config: ConfigFileInput, env: Record<string, string> = stack.env) =>
    runDoctor(join(stack.dir, `${name}.json`), config, env)

  it("passes with the working setup, says which Basic encoding works, warns what discovery lacks", async () => {
    const result = await doctor("sound", stack.configFile)
    expect(result.stdout).toMatch(
      /✔ provider glewlwyd credentials: Basic credentials accepted plain \(configured\), refused form-encoded \(RFC 6749\): revocation of a random token answered 200/
    )
    // Glewlwyd refreshes, but its discovery lists only authorization_code and implicit
    expect(result.stdout).toMatch(
      /! provider glewlwyd features: grant_types_supported \(authorization_code, implicit\) does not list refresh_token/
    )
    expect(result.stdout).not.toMatch(/✖/)
    expect(result.code).toBe(0)
  })

  it("fails on RFC 6749 form-encoded Basic credentials and names the fix", async () => {
    const result = await doctor(
      "form",
      variant((p) => ({
        ...p,
        clientAuthentication: {
          method: "client_secret_basic",
          clientSecret: { env: "GLEWLWYD_CLIENT_SECRET" }
        }
      }))
    )
    expect(result.code).toBe(1)
    expect(result.stdout).toMatch(
      /✖ provider glewlwyd credentials: the provider refuses Basic credentials form-encoded \(RFC 6749\) \(revocation answered HTTP 401 without an OAuth error\) but accepts them plain/
    )
    expect(result.stdout).toMatch(/fix: set providers\[0\]\.clientAuthentication\.encoding: plain/)
  })

  it("fails with a wrong client secret", async () => {
    const result = await doctor("wrong-secret", stack.configFile, {
      ...stack.env,
      GLEWLWYD_CLIENT_SECRET: "not-the-secret"
    })
    expect(result.code).toBe(1)
    expect(result.stdout).toMatch(
      /✖ provider glewlwyd credentials: the provider refuses the client credentials: revocation answered HTTP 401 without an OAuth error/
    )
    expect(result.stdout + result.stderr).not.toContain("not-the-secret")
  })

  it("fails when the config uses token exchange, which Glewlwyd does not offer", async () => {
    const result = await doctor(
      "exchange",
      variant((p) => ({ ...p, tokenExchange: {} }))
    )
    expect(result.code).toBe(1)
    expect(result.stdout).toMatch(
      /✖ provider glewlwyd features: provider "glewlwyd" is configured for token exchange, but its metadata's grant_types_supported does not list urn:ietf:params:oauth:grant-type:token-exchange/
    )
    expect(result.stdout).toMatch(/fix: remove providers\[0\]\.tokenExchange/)
  })
})
