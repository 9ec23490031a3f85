import { randomBytes } from "node:crypto"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Writable } from "node:stream"
import { type RunningBroker, startBroker } from "@token-broker/broker-app/src/Broker.js"
import { type ConfigFileInput, hashSecret, keyRingLayer, parseConfig, storeLayer } from "@token-broker/config"
import { GrantStore, KeyRing } from "@token-broker/core"
import { Effect, Layer, Option, Redacted } from "effect"
import { type Browser, chromium } from "playwright-core"
import { type Glewlwyd, startGlewlwyd } from "../../src/Glewlwyd.js"

/**
 * The HTTP broker (bound to port 0 in this process) in front of Glewlwyd. Its redirect URI cannot name
 * a port nobody knows yet, so the broker has a fixed public origin, registered at Glewlwyd, and the
 * browser's requests to that origin are delivered to the bound address (the load balancer's part).
 */
export const PUBLIC_URL = "http://broker.example.test"
export const PROVIDER = "glewlwyd"
export const SUBJECT = "alice"

/** Log lines captured in memory, to check what was logged (and that no secret was). */
export class LogCapture extends Writable {
  readonly lines: Array<Record<string, unknown>> = []
  readonly raw: Array<string> = []
  override _write(chunk: Buffer | string, _encoding: BufferEncoding, callback: () => void) {
    for (const line of chunk.toString().split("\n")) {
      if (line.trim() === "") continue
      this.raw.push(line)
      try {
        this.lines.push(JSON.parse(line) as Record<string, unknown>)
      } catch {
        this.lines.push({ msg: line })
      }
    }
    callback()
  }
  text(): string {
    return this.raw.join("\n")
  }
}

export const CALLER = { id: "interop", secret: randomBytes(24).toString("base64url") }

export type ClientAuthenticationInput = NonNullable<
  ConfigFileInput["providers"]
>[number]["clientAuthentication"]

export interface InteropStack {
  readonly glewlwyd: Glewlwyd
  readonly broker: RunningBroker
  readonly logs: LogCapture
  readonly dir: string
  /** The broker's config file input, for the CLI (`doctor`). */
  readonly configFile: ConfigFileInput
  readonly env: Record<string, string>
  readonly call: (
    method: string,
    path: string,
    json?: unknown
  ) => Promise<{ status: number; body: Record<string, unknown> }>
  /** The refresh token the broker stores for SUBJECT (decrypted with the broker's own key). */
  readonly storedRefreshToken: () => Promise<string>
  /** Consent in Chromium: Glewlwyd's login and grant pages, then the broker's callback page. */
  readonly consent: () => Promise<{ status: number; text: string }>
  readonly stop: () => Promise<void>
}

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium"
const FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync"]

export const startInteropStack = async (
  options: {
    readonly clientAuthentication?: (secretRef: { env: string }) => ClientAuthenticationInput
    readonly clientId?: string
  } = {}
): Promise<InteropStack> => {
  const glewlwyd = await startGlewlwyd({
    binary: process.env.GLEWLWYD_PATH,
    redirectUri: `${PUBLIC_URL}/connect/callback`,
    ...(options.clientId === undefined ? {} : { clientId: options.clientId })
  })
  const dir = await mkdtemp(join(tmpdir(), "tb-interop-"))
  const logs = new LogCapture()
  let browser: Browser | undefined
  let broker: RunningBroker | undefined
  try {
    const env = {
      GLEWLWYD_CLIENT_SECRET: glewlwyd.client.secret,
      TB_KEY: randomBytes(32).toString("base64")
    }
    const secretRef = { env: "GLEWLWYD_CLIENT_SECRET" }
    const configFile: ConfigFileInput = {
      server: {
        host: "127.0.0.1",
        port: 0,
        publicUrl: PUBLIC_URL,
        logLevel: "info",
        shutdownTimeout: "5 seconds"
      },
      storage: { kind: "sqlite", filename: join(dir, "grants.db") },
      keyRing: { kind: "local", keys: [{ kid: "k1", env: "TB_KEY" }] },
      providers: [
        {
          id: PROVIDER,
          issuer: glewlwyd.issuer,
          clientId: glewlwyd.client.id,
          clientAuthentication: options.clientAuthentication?.(secretRef) ?? {
            method: "client_secret_post",
            clientSecret: secretRef
          },
          scopes: ["openid", "offline_access"],
          allowInsecureRequests: true,
          requestTimeout: "10 seconds",
          // Glewlwyd's `sub` is an opaque id, not the broker's subject
          identityBinding: "any"
        }
      ],
      callers: [
        {
          id: CALLER.id,
          secretHash: await Effect.runPromise(hashSecret(CALLER.secret)),
          providers: ["*"],
          subjects: ["*"],
          scopes: ["*"],
          backgroundTokens: true,
          grants: "manage"
        }
      ]
    }
    const config = await Effect.runPromise(parseConfig(configFile, env, { baseDir: dir }))
    broker = await startBroker(config, { logStream: logs as never })
    const running = broker
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS })
    const openBrowser = browser
    const authorization = `Basic ${Buffer.from(`${CALLER.id}:${CALLER.secret}`).toString("base64")}`
    const call: InteropStack["call"] = async (method, path, json) => {
      const response = await fetch(`${running.url}${path}`, {
        method,
        headers: {
          authorization,
          ...(json === undefined ? {} : { "content-type": "application/json" })
        },
        ...(json === undefined ? {} : { body: JSON.stringify(json) })
      })
      const text = await response.text()
      let body: Record<string, unknown>
      try {
        body = JSON.parse(text) as Record<string, unknown>
      } catch {
        body = { text }
      }
      return { status: response.status, body }
    }
    const consent = async () => {
      const started = await call("POST", `/v1/grants/${SUBJECT}/${PROVIDER}/authorize`, {})
      if (started.status !== 200)
        throw new Error(`authorize answered ${started.status}: ${JSON.stringify(started.body)}`)
      const context = await openBrowser.newContext()
      // Each wait below is for an event (a page, a button, the callback's answer). Playwright's 30 s
      // default was reached once in CI with the whole suite loading the 2 cores (Glewlwyd's page and
      // the broker's callback both slow): the waits get 90 s, inside the test's 120 s.
      context.setDefaultTimeout(90_000)
      try {
        const page = await context.newPage()
        // the load balancer: the public origin, delivered to the bound address
        await page.route(`${PUBLIC_URL}/**`, async (route) => {
          const target = new URL(route.request().url())
          const answer = await fetch(`${running.url}${target.pathname}${target.search}`)
          await route.fulfill({
            status: answer.status,
            contentType: answer.headers.get("content-type") ?? "text/html",
            body: await answer.text()
          })
        })
        await page.goto(String(started.body.authorizationUrl))
        await page.fill("#username", glewlwyd.user.username)
        await page.fill("#password", glewlwyd.user.password)
        const callback = page.waitForResponse((response) =>
          response.url().startsWith(`${PUBLIC_URL}/connect/callback`)
        )
        await page.click("#loginbut")
        // the grant page the first time; later Glewlwyd remembers the grant (it ignores prompt=consent)
        // and offers only "Continue"
        const proceed = page.locator(".card-footer button:has-text('Continue')")
        await proceed.waitFor()
        if ((await page.locator("#grant-offline_access").count()) > 0) {
          await page.check("#grant-offline_access")
          await page.click("button:has-text('Grant access')")
        }
        await proceed.click()
        const answered = await callback
        await page.waitForLoadState("load")
        return { status: answered.status(), text: (await page.textContent("body")) ?? "" }
      } finally {
        await context.close()
      }
    }
    const storedRefreshToken = () =>
      Effect.runPromise(
        Effect.scoped(
          Effect.gen(function* () {
            const store = yield* GrantStore.GrantStore
            const keyRing = yield* KeyRing.KeyRing
            const found = yield* store.get({ tenant: "default", subject: SUBJECT, provider: PROVIDER })
            const record = Option.getOrThrow(found)
            const token = yield* keyRing.decrypt(record.refreshToken, KeyRing.aadFor(record, "refresh_token"))
            return Redacted.value(token)
          }).pipe(Effect.provide(Layer.merge(storeLayer(config.storage), keyRingLayer(config.keyRing))))
        )
      )
    return {
      glewlwyd,
      broker: running,
      storedRefreshToken,
      logs,
      dir,
      configFile,
      env,
      call,
      consent,
      stop: async () => {
        await openBrowser.close()
        await running.close()
        await glewlwyd.close()
        await rm(dir, { recursive: true, force: true })
      }
    }
  } catch (error) {
    await browser?.close()
    await broker?.close()
    await glewlwyd.close()
    await rm(dir, { recursive: true, force: true })
    throw error
  }
}
