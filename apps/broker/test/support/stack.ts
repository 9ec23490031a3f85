import { randomBytes } from "node:crypto"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { type ConfigFileInput, hashSecret, keyRingLayer, parseConfig, storeLayer } from "@token-broker/config"
import type { GrantStore, KeyRing } from "@token-broker/core"
import { type DevIdp, startDevIdp } from "@token-broker/dev-idp"
import { type KnownSecret, SecretList } from "@token-broker/secret-scan"
import { pendingConsentSecrets, storedGrantSecrets } from "@token-broker/secret-scan/store"
import { withClient } from "@token-broker/storage-postgres/testing"
import { Effect, Layer, ManagedRuntime } from "effect"
import type Pg from "pg"
import { expect } from "vitest"
import { type RunningBroker, startBroker } from "../../src/Broker.js"
import { CALLBACK, devIdpProviders, PUBLIC_URL } from "./portZeroBroker.js"

export { LogCapture } from "@token-broker/server-kit/testing"

/** RFC 8693's grant type, and its token type of an access token. */
export const TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
export const ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"

export const MCP_AUDIENCE = "http://127.0.0.1/mcp"

/** The bearer token of `/metrics` where a stack sets `server.metrics.token: { env: TB_METRICS_TOKEN }`. */
export const METRICS_TOKEN = randomBytes(24).toString("base64url")

/** The PostgreSQL the tests use: `DATABASE_URL`, else the machine's server (trust auth, database `test`). */
export const databaseUrl = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test"

export type Backend = "sqlite" | "postgres" | "memory"

/**
 * Every secret the stacks of this test file handled, for the secret scan of their logs (F19): caller
 * and client secrets, keys, passwords and the metrics token as a stack starts; user tokens as
 * `userToken` gets them; access tokens as `call` receives them; the PKCE verifier, nonce, code and state
 * of each consent `connectOverHttp` makes; and the stored refresh and access tokens `rememberStored`
 * decrypts.
 */
export const runSecrets = new SecretList()

export interface CallerSpec {
  readonly id: string
  readonly secret: string
}

/** The callers every stack registers, with their policies. */
export const CALLERS = {
  /** May do everything. */
  agent: { id: "agent", secret: randomBytes(24).toString("base64url") },
  /** May only read grants. */
  reader: { id: "reader", secret: randomBytes(24).toString("base64url") },
  /** Background tokens and exchange, but only provider notes, subject u-bob, scope notes:read. */
  narrow: { id: "narrow", secret: randomBytes(24).toString("base64url") },
  /** Manages grants (starts consent) for any subject, but only provider notes and scope notes:read. */
  steward: { id: "steward", secret: randomBytes(24).toString("base64url") },
  /** May exchange, but names no subject tokens beyond its own (tokens issued to the client "bound"). */
  bound: { id: "bound", secret: randomBytes(24).toString("base64url") }
} as const

export const withPg = <A>(use: (client: Pg.Client) => Promise<A>): Promise<A> => withClient(databaseUrl, use)

export interface Stack {
  readonly idp: DevIdp
  readonly broker: RunningBroker
  readonly url: string
  readonly keyMaterial: string
  readonly callers: typeof CALLERS
  /**
   * Adds every stored grant's refresh and access tokens to `runSecrets`, decrypted through a second
   * connection to the broker's store with its key ring (SQLite and PostgreSQL stacks; a memory store
   * cannot be reached from outside the broker, and adds nothing).
   */
  readonly rememberStored: () => Promise<void>
  /** Adds the PKCE verifier and nonce of the consent pending under `state` to `runSecrets` (as above). */
  readonly rememberPending: (state: string) => Promise<void>
  readonly stop: () => Promise<void>
}

export interface StackOptions {
  readonly backend: Backend
  readonly logLevel?: "debug" | "info" | "silent" | undefined
  readonly logStream?: NodeJS.WritableStream | undefined
  readonly rateLimit?: { max: number; timeWindow: string } | undefined
  readonly accessTokenTtlSeconds?: number | undefined
  /** More `server` settings (timeouts, limits, trustProxy). */
  readonly server?: NonNullable<ConfigFileInput["server"]> | undefined
  /**
   * dev-idp as a plain OAuth 2.0 provider, GitHub-style, and provider "notes" configured for it: no
   * discovery (`none`: endpoints in the config) or RFC 8414 metadata, no ID token, no offline scope, the
   * identity from the GitHub-style `/user`. No provider does token exchange then.
   */
  readonly plainOAuth?: "none" | "oauth-authorization-server" | undefined
  /** Settings laid over provider "notes" (e.g. `tokenExchange` on a plain OAuth 2.0 provider). */
  readonly notes?: Record<string, unknown> | undefined
}

/**
 * dev-idp + the broker on the chosen backend, over real HTTP. Each stack has its own database. The
 * broker binds port 0 in this process and keeps a fixed public URL, as behind a load balancer (see
 * `portZeroBroker.ts`): `connectOverHttp` delivers the consent callback to the bound address.
 */
export const startStack = async (options: StackOptions): Promise<Stack> => {
  const idp = await startDevIdp({
    mcpAudience: MCP_AUDIENCE,
    redirectUris: [CALLBACK],
    ...(options.plainOAuth === undefined ? {} : { plainOAuth: { metadata: options.plainOAuth } }),
    ...(options.accessTokenTtlSeconds === undefined
      ? {}
      : { accessTokenTtlSeconds: options.accessTokenTtlSeconds })
  })
  const dir = await mkdtemp(join(tmpdir(), "tb-broker-"))
  const schema = `tb_app_${randomBytes(6).toString("hex")}`
  const keyMaterial = randomBytes(32).toString("base64")
  const env = {
    NOTES_CLIENT_SECRET: idp.client("token-broker").clientSecret,
    OTHER_CLIENT_SECRET: idp.client("token-broker-post").clientSecret,
    TB_KEY: keyMaterial,
    TB_METRICS_TOKEN: METRICS_TOKEN,
    TB_DATABASE_URL: databaseUrl
  }
  const hash = (secret: string) => Effect.runPromise(hashSecret(secret))
  const storage =
    options.backend === "sqlite"
      ? { kind: "sqlite" as const, filename: join(dir, "grants.db") }
      : options.backend === "postgres"
        ? { kind: "postgres" as const, url: { env: "TB_DATABASE_URL" }, schema }
        : { kind: "memory" as const }
  if (options.backend === "postgres") await withPg(async () => undefined)
  const file: ConfigFileInput = {
    server: {
      host: "127.0.0.1",
      port: 0,
      publicUrl: PUBLIC_URL,
      logLevel: options.logLevel ?? "silent",
      shutdownTimeout: "5 seconds",
      returnToOrigins: ["http://app.example.test"],
      ...(options.rateLimit === undefined ? {} : { rateLimit: options.rateLimit }),
      ...options.server
    },
    storage,
    keyRing: { kind: "local", keys: [{ kid: "k1", env: "TB_KEY" }] },
    providers: [
      {
        ...devIdpProviders(idp).notes,
        requestTimeout: "5 seconds",
        ...(options.plainOAuth === undefined
          ? { tokenExchange: {} }
          : {
              discovery: options.plainOAuth,
              endpoints:
                options.plainOAuth === "none"
                  ? {
                      authorization: idp.endpoints.authorization,
                      token: idp.endpoints.token,
                      revocation: idp.endpoints.revocation,
                      userinfo: idp.endpoints.userinfo
                    }
                  : { userinfo: idp.endpoints.userinfo },
              offlineAccessScope: null,
              userinfoSubjectField: "id"
            }),
        ...options.notes
      },
      {
        ...devIdpProviders(idp).other,
        ...(options.plainOAuth === undefined ? { tokenExchange: {} } : { identityBinding: "any" as const })
      }
    ],
    sessionTokens: {
      audience: MCP_AUDIENCE,
      // a plain OAuth 2.0 provider has no discovery to find its JWKS in
      issuers: [
        options.plainOAuth === undefined
          ? { issuer: idp.issuer }
          : { issuer: idp.issuer, jwksUri: idp.endpoints.jwks }
      ],
      allowInsecureRequests: true
    },
    callers: [
      {
        id: CALLERS.agent.id,
        secretHash: await hash(CALLERS.agent.secret),
        providers: ["*"],
        subjects: ["*"],
        scopes: ["*"],
        backgroundTokens: true,
        tokenExchange: true,
        subjectTokens: { clientIds: ["mcp-client"] },
        grants: "manage"
      },
      {
        id: CALLERS.reader.id,
        secretHash: await hash(CALLERS.reader.secret),
        providers: ["*"],
        subjects: ["*"],
        scopes: ["*"],
        grants: "read"
      },
      {
        id: CALLERS.narrow.id,
        secretHash: await hash(CALLERS.narrow.secret),
        providers: ["notes"],
        subjects: ["u-bob"],
        scopes: ["notes:read"],
        backgroundTokens: true,
        tokenExchange: true,
        subjectTokens: { clientIds: ["mcp-client"] },
        grants: "read"
      },
      {
        id: CALLERS.steward.id,
        secretHash: await hash(CALLERS.steward.secret),
        providers: ["notes"],
        subjects: ["*"],
        scopes: ["notes:read"],
        backgroundTokens: true,
        grants: "manage"
      },
      {
        id: CALLERS.bound.id,
        secretHash: await hash(CALLERS.bound.secret),
        providers: ["*"],
        subjects: ["*"],
        scopes: ["*"],
        tokenExchange: true
      }
    ]
  }
  const config = await Effect.runPromise(parseConfig(file, env, { baseDir: dir }))
  for (const caller of Object.values(CALLERS)) runSecrets.add(`caller secret of ${caller.id}`, caller.secret)
  runSecrets.add("key k1", keyMaterial).add("key k1 (bytes)", Buffer.from(keyMaterial, "base64"))
  for (const client of idp.clients) {
    if (client.clientSecret !== undefined)
      runSecrets.add(`client secret of ${client.clientId}`, client.clientSecret)
  }
  for (const user of idp.users) runSecrets.add(`password of ${user.username}`, user.password)
  runSecrets.add("metrics token", METRICS_TOKEN)
  let broker: RunningBroker
  try {
    broker = await startBroker(config, { logStream: options.logStream as never })
  } catch (error) {
    await idp.close()
    await rm(dir, { recursive: true, force: true })
    throw error
  }
  // the store and key ring the broker runs on, over a connection of their own (after the broker migrated)
  const inspector =
    options.backend === "memory"
      ? undefined
      : ManagedRuntime.make(Layer.merge(storeLayer(config.storage), keyRingLayer(config.keyRing)))
  const remember = async (
    read: Effect.Effect<ReadonlyArray<KnownSecret>, unknown, GrantStore.GrantStore | KeyRing.KeyRing>
  ) => {
    if (inspector !== undefined) runSecrets.addAll(await inspector.runPromise(read))
  }
  return {
    idp,
    broker,
    url: broker.url,
    keyMaterial,
    callers: CALLERS,
    rememberStored: () => remember(storedGrantSecrets),
    rememberPending: (state) => remember(pendingConsentSecrets(state)),
    stop: async () => {
      await inspector?.dispose()
      await broker.close()
      await idp.close()
      await rm(dir, { recursive: true, force: true })
      if (options.backend === "postgres") {
        await withPg((client) => client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`))
      }
    }
  }
}

export const basic = (caller: CallerSpec) =>
  `Basic ${Buffer.from(`${encodeURIComponent(caller.id)}:${encodeURIComponent(caller.secret)}`).toString("base64")}`

/** A JSON request to the broker as a caller. */
export const call = async (
  stack: Stack,
  method: string,
  path: string,
  options: { caller?: CallerSpec | undefined; json?: unknown; headers?: Record<string, string> } = {}
): Promise<{ status: number; headers: Headers; body: Record<string, unknown> }> => {
  const headers: Record<string, string> = { ...options.headers }
  if (options.caller !== undefined) headers.authorization = basic(options.caller)
  if (options.json !== undefined) headers["content-type"] = "application/json"
  const response = await fetch(`${stack.url}${path}`, {
    method,
    headers,
    ...(options.json === undefined ? {} : { body: JSON.stringify(options.json) })
  })
  const text = await response.text()
  let body: Record<string, unknown> = {}
  try {
    body = JSON.parse(text) as Record<string, unknown>
  } catch {
    body = { text }
  }
  for (const field of ["accessToken", "access_token"]) {
    const token = body[field]
    if (typeof token === "string" && token.length > 0)
      runSecrets.add(`access token served to ${method} ${path}`, token)
  }
  return { status: response.status, headers: response.headers, body }
}

/** The user's own (Flow 1) token for the MCP audience, from dev-idp. */
export const userToken = async (idp: DevIdp, index = 0) => {
  const who = idp.users[index]
  if (who === undefined) throw new Error("no such dev-idp user")
  const tokens = await idp.login({
    clientId: "mcp-client",
    username: who.username,
    password: who.password,
    scopes: ["openid", "notes:read", "notes:write"],
    resource: MCP_AUDIENCE
  })
  runSecrets.add(`user token of ${who.username}`, tokens.access_token)
  if (tokens.id_token !== undefined) runSecrets.add(`ID token of ${who.username}`, tokens.id_token)
  return tokens.access_token
}

/** Flow 2 through the HTTP API: authorize -> dev-idp's login/consent (headless) -> GET /connect/callback. */
export const connectOverHttp = async (stack: Stack, index = 0, caller: CallerSpec = CALLERS.agent) => {
  const who = stack.idp.users[index]
  if (who === undefined) throw new Error("no such dev-idp user")
  const started = await call(stack, "POST", `/v1/grants/${who.sub}/notes/authorize`, { caller, json: {} })
  if (started.status !== 200)
    throw new Error(`authorize answered ${started.status}: ${JSON.stringify(started.body)}`)
  const authorizationUrl = new URL(String(started.body.authorizationUrl))
  await stack.rememberPending(authorizationUrl.searchParams.get("state") ?? "")
  const redirect = await stack.idp.driveAuthorization(authorizationUrl, {
    username: who.username,
    password: who.password
  })
  if (!redirect.href.startsWith(CALLBACK)) throw new Error("dev-idp redirected elsewhere than the callback")
  for (const name of ["code", "state"])
    runSecrets.add(`consent ${name}`, redirect.searchParams.get(name) ?? "")
  // the load balancer's part: the public callback, delivered to the bound address
  const callback = new URL(`${redirect.pathname}${redirect.search}`, stack.url)
  const page = await fetch(callback)
  await stack.rememberStored()
  return { callback, status: page.status, html: await page.text(), user: who }
}

/** POST /v1/grants/{subject}/notes/token as the agent caller: a background token of provider "notes". */
export const notesToken = (stack: Stack, subject: string, json: Record<string, unknown> = {}) =>
  call(stack, "POST", `/v1/grants/${subject}/notes/token`, { caller: CALLERS.agent, json })

/** Consent of dev-idp user `index` over HTTP, then a first background token; both must succeed. */
export const connectWithToken = async (stack: Stack, index = 0) => {
  const consent = await connectOverHttp(stack, index)
  expect(consent.status).toBe(200)
  const subject = consent.user.sub
  const first = await notesToken(stack, subject)
  expect(first.status).toBe(200)
  return { subject, first }
}
