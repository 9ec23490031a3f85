import { afterEach, describe, expect, it } from "vitest"
import { type InteropStack, PROVIDER, SUBJECT, startInteropStack } from "./support/stack.js"

// The client id is `token-broker-interop` and the secret base64url: RFC 6749's form-encoding turns their
// `-` and `_` into `%2D` and `%5F`, which Glewlwyd 2.7.5 does not decode (F24).
describe("client_secret_basic at Glewlwyd, with a client id containing `-`", () => {
  let stack: InteropStack | undefined
  afterEach(async () => {
    await stack?.stop()
    stack = undefined
  })

  it('encoding "form" (RFC 6749, the default): Glewlwyd refuses the credentials, consent fails', async () => {
    stack = await startInteropStack({
      clientAuthentication: (clientSecret) => ({ method: "client_secret_basic", clientSecret })
    })
    const page = await stack.consent()
    expect(page.status).toBeGreaterThanOrEqual(400)
    const grant = await stack.call("GET", `/v1/grants/${SUBJECT}/${PROVIDER}`)
    expect(grant.status).toBe(404)
    // the refusal is logged once, with what Glewlwyd answered
    const warned = stack.logs.lines.filter((line) => line.level === 40 && line.operation === "code exchange")
    expect(warned, JSON.stringify(warned)).toHaveLength(1)
    expect(warned[0]).toMatchObject({
      provider: PROVIDER,
      grant: expect.stringContaining(SUBJECT),
      errorCode: "unauthorized_client",
      status: 403
    })
  })

  it('encoding "plain": consent, a background token and a refresh work', async () => {
    stack = await startInteropStack({
      clientAuthentication: (clientSecret) => ({
        method: "client_secret_basic",
        clientSecret,
        encoding: "plain"
      })
    })
    expect((await stack.consent()).status).toBe(200)
    const token = await stack.call("POST", `/v1/grants/${SUBJECT}/${PROVIDER}/token`, {})
    expect(token.status).toBe(200)
    const reported = await stack.call("POST", `/v1/grants/${SUBJECT}/${PROVIDER}/token/rejected`, {
      accessToken: token.body.accessToken
    })
    expect(reported.status).toBe(200)
    const before = stack.glewlwyd.accessTokensIssued()
    const refreshed = await stack.call("POST", `/v1/grants/${SUBJECT}/${PROVIDER}/token`, {})
    expect(refreshed.status, JSON.stringify(refreshed.body)).toBe(200)
    expect(stack.glewlwyd.accessTokensIssued()).toBe(before + 1)
  })
})
