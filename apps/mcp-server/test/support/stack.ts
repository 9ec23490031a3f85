import type { ChildProcess } from "node:child_process"
import { randomBytes } from "node:crypto"
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { type ConfigFileInput, hashSecret, keyRingLayer, parseConfig, storeLayer } from "@token-broker/config"
import type { GrantStore, KeyRing } from "@token-broker/core"
import { type DevIdp, startDevIdp } from "@token-broker/dev-idp"
import { type KnownSecret, SecretList } from "@token-broker/secret-scan"
import { pendingConsentSecrets, storedGrantSecrets } from "@token-broker/secret-scan/store"
import { addressFileText, LogCapture, spawnServer } from "@token-broker/server-kit/testing"
import { Effect, Layer, ManagedRuntime } from "effect"
import { type RunningMcpServer, startMcpServer } from "../../src/McpServer.js"
import { type FrontDoor, startFrontDoor } from "./frontDoor.js"

export type TokenSourceKind = "in-process" | "remote"

/** The MCP scopes of a full sign-in. */
export const ALL_SCOPES = ["mcp:tools", "notes:read", "notes:write"]

export interface Stack {
  readonly kind: TokenSourceKind
  readonly idp: DevIdp
  readonly mcp: RunningMcpServer
  /** `${publicUrl}/mcp`: the MCP endpoint and the audience of its tokens. */
  readonly mcpUrl: string
  /** A second MCP server on the same token source whose notes tools use the exchange provider (session tokens). */
  readonly exchangeMcpUrl: string
  /** Where consent lands: the MCP server's own callback (in-process) or the broker's (remote). */
  readonly callbackUrl: string
  readonly logs: LogCapture
  /** What the HTTP broker's process printed (remote token source; empty in-process). */
  readonly brokerOutput: () => string
  /**
   * Every secret the stack handled, for the secret scan of its logs (F19): caller and client secrets,
   * the key, passwords and user tokens as they are made; what `rememberStored` and `rememberPending` add.
   */
  readonly secrets: SecretList
  /** Adds every stored grant's refresh and access tokens, decrypted with the stack's key ring. */
  readonly rememberStored: () => Promise<void>
  /** Adds the PKCE verifier and nonce of the consent an authorization URL (not yet used) belongs to. */
  readonly rememberPending: (authorizationUrl: string | URL) => Promise<void>
  /** A token of dev-idp for the MCP server, as an MCP client would get it. */
  readonly tokenFor: (username: string, scopes?: ReadonlyArray<string>, audience?: string) => Promise<string>
  readonly user: (username: string) => {
    readonly sub: string
    readonly username: string
    readonly password: string
  }
  readonly stop: () => Promise<void>
}

const here = dirname(fileURLToPath(import.meta.url))
const brokerMain = resolve(here, "../../../broker/src/main.ts")
const tsx = resolve(here, "../../node_modules/.bin/tsx")

/**
 * The HTTP broker in its own process, started as an operator would (`broker --config file`), on port 0:
 * it reports its bound address through `--address-file`.
 */
const spawnBroker = async (
  configPath: string,
  env: Record<string, string>
): Promise<{ readonly process: ChildProcess; readonly url: string; readonly output: () => string }> => {
  const addressFile = join(dirname(configPath), "broker.address")
  const server = spawnServer(tsx, [brokerMain, "--config", configPath, "--address-file", addressFile], {
    cwd: dirname(brokerMain),
    env: { ...process.env, ...env }
  })
  try {
    const url = (await addressFileText(server, addressFile)).trim()
    return { process: server.child, url, output: server.output }
  } catch (error) {
    server.child.kill("SIGKILL")
    throw error
  }
}

/**
 * dev-idp (with the MCP server as a resource), the MCP server in this process, and - for the remote
 * token source - the HTTP broker in its own process; SQLite in a temp folder.
 */
export interface StackOptions {
  /** More `mcpServer` settings of the main MCP server (allowed hosts, session limits, timeouts). */
  readonly mcpServer?: Partial<NonNullable<ConfigFileInput["mcpServer"]>> | undefined
}

export const startStack = async (kind: TokenSourceKind, options: StackOptions = {}): Promise<Stack> => {
  // every server binds port 0 where it runs; its public URL is a front door bound here first
  const doors: Array<FrontDoor> = await Promise.all([startFrontDoor(), startFrontDoor(), startFrontDoor()])
  const [mcpDoor, exchangeDoor, brokerDoor] = doors as [FrontDoor, FrontDoor, FrontDoor]
  const closeDoors = () => Promise.all(doors.map((door) => door.close()))
  const exchangeMcpUrl = `${exchangeDoor.url}/mcp`
  const publicUrl = mcpDoor.url
  const mcpUrl = `${publicUrl}/mcp`
  const brokerPublicUrl = brokerDoor.url
  const callbackUrl =
    kind === "in-process" ? `${publicUrl}/connect/callback` : `${brokerPublicUrl}/connect/callback`
  const idp = await startDevIdp({
    mcpAudience: mcpUrl,
    redirectUris: [`${publicUrl}/connect/callback`, `${brokerPublicUrl}/connect/callback`]
  })
  const dir = await mkdtemp(join(tmpdir(), "tb-mcp-"))
  const callerSecret = randomBytes(24).toString("base64url")
  const env: Record<string, string> = {
    NOTES_CLIENT_SECRET: idp.client("token-broker").clientSecret ?? "",
    TB_KEY: randomBytes(32).toString("base64"),
    MCP_CALLER_SECRET: callerSecret
  }
  const notesProvider = (id: string) => ({
    id,
    issuer: idp.issuer,
    clientId: "token-broker",
    clientAuthentication: {
      method: "client_secret_basic" as const,
      clientSecret: { env: "NOTES_CLIENT_SECRET" }
    },
    redirectUri: callbackUrl,
    scopes: ["notes:read", "notes:write"],
    resource: idp.notesAudience,
    allowInsecureRequests: true,
    requestTimeout: "5 seconds",
    tokenExchange: {}
  })
  // "notes" is able to exchange, yet the MCP server uses background tokens for it: it is not in
  // exchangeProviders; "notes-exchange" is
  const providers: ConfigFileInput["providers"] = [notesProvider("notes"), notesProvider("notes-exchange")]
  const shared = {
    storage: { kind: "sqlite" as const, filename: join(dir, "grants.db") },
    keyRing: { kind: "local" as const, keys: [{ kid: "k1", env: "TB_KEY" }] },
    providers,
    sessionTokens: {
      audience: [mcpUrl, exchangeMcpUrl],
      issuers: [{ issuer: idp.issuer }],
      allowInsecureRequests: true
    }
  }
  const mcpServer: NonNullable<ConfigFileInput["mcpServer"]> = {
    host: "127.0.0.1",
    port: 0,
    publicUrl,
    authorizationServer: { issuer: idp.issuer, allowInsecureRequests: true, clockTolerance: 0 },
    notes: { provider: "notes", apiUrl: idp.notesApiUrl, allowInsecureRequests: true },
    exchangeProviders: ["notes-exchange"],
    logLevel: "info",
    ...options.mcpServer
  }
  let broker:
    | { readonly process: ChildProcess; readonly url: string; readonly output: () => string }
    | undefined
  const fileFor = (brokerUrl: string | undefined): ConfigFileInput =>
    brokerUrl === undefined
      ? { ...shared, mcpServer }
      : {
          ...shared,
          tokenSource: {
            kind: "remote",
            url: brokerUrl,
            clientId: "mcp-server",
            clientSecret: { env: "MCP_CALLER_SECRET" },
            allowInsecureRequests: true
          },
          mcpServer
        }
  idp.addResource({ audience: exchangeMcpUrl, scopes: ALL_SCOPES })
  const logs = new LogCapture()
  const secrets = new SecretList()
    .add("caller secret of mcp-server", callerSecret)
    .add("key k1", env.TB_KEY ?? "")
    .add("key k1 (bytes)", Buffer.from(env.TB_KEY ?? "", "base64"))
  for (const client of idp.clients) {
    if (client.clientSecret !== undefined)
      secrets.add(`client secret of ${client.clientId}`, client.clientSecret)
  }
  for (const who of idp.users) secrets.add(`password of ${who.username}`, who.password)
  let config: Effect.Effect.Success<ReturnType<typeof parseConfig>> | undefined
  let mcp: RunningMcpServer
  let exchangeMcp: RunningMcpServer
  try {
    if (kind === "remote") {
      const brokerFile: ConfigFileInput = {
        ...shared,
        server: { host: "127.0.0.1", port: 0, publicUrl: brokerPublicUrl, logLevel: "warn" },
        callers: [
          {
            id: "mcp-server",
            secretHash: await Effect.runPromise(hashSecret(callerSecret)),
            providers: ["*"],
            subjects: ["*"],
            scopes: ["*"],
            backgroundTokens: true,
            tokenExchange: true,
            subjectTokens: { audiences: [mcpUrl, exchangeMcpUrl] },
            grants: "manage"
          }
        ]
      }
      const brokerConfigPath = join(dir, "broker.json")
      await writeFile(brokerConfigPath, JSON.stringify(brokerFile), { mode: 0o600 })
      broker = await spawnBroker(brokerConfigPath, env)
      brokerDoor.forwardTo(broker.url)
    }
    const file = fileFor(broker?.url)
    config = await Effect.runPromise(parseConfig(file, env, { baseDir: dir }))
    mcp = await startMcpServer(config, { logStream: logs })
    mcpDoor.forwardTo(mcp.url)
    const exchangeConfig = await Effect.runPromise(
      parseConfig(
        {
          ...file,
          mcpServer: {
            ...mcpServer,
            publicUrl: exchangeDoor.url,
            notes: { provider: "notes-exchange", apiUrl: idp.notesApiUrl, allowInsecureRequests: true }
          }
        },
        env,
        { baseDir: dir }
      )
    )
    exchangeMcp = await startMcpServer(exchangeConfig, { logStream: logs })
    exchangeDoor.forwardTo(exchangeMcp.url)
  } catch (error) {
    broker?.process.kill("SIGKILL")
    await closeDoors()
    await idp.close()
    await rm(dir, { recursive: true, force: true })
    throw error
  }
  // the store and key ring both servers (and the remote broker) run on, over a connection of their own
  const inspector =
    config === undefined
      ? undefined
      : ManagedRuntime.make(Layer.merge(storeLayer(config.storage), keyRingLayer(config.keyRing)))
  const remember = async (
    read: Effect.Effect<ReadonlyArray<KnownSecret>, unknown, GrantStore.GrantStore | KeyRing.KeyRing>
  ) => {
    if (inspector === undefined) throw new Error("the stack's store cannot be inspected")
    secrets.addAll(await inspector.runPromise(read))
  }
  const user = (username: string) => {
    const found = idp.users.find((u) => u.username === username)
    if (found === undefined) throw new Error(`no dev-idp user ${username}`)
    return found
  }
  return {
    kind,
    idp,
    mcp,
    mcpUrl,
    exchangeMcpUrl,
    callbackUrl,
    logs,
    brokerOutput: () => broker?.output() ?? "",
    secrets,
    rememberStored: () => remember(storedGrantSecrets),
    rememberPending: (authorizationUrl) =>
      remember(pendingConsentSecrets(new URL(authorizationUrl).searchParams.get("state") ?? "")),
    user,
    tokenFor: async (username, scopes = ALL_SCOPES, audience = mcpUrl) => {
      const { password } = user(username)
      // the login driver sends a nonce, so it asks for openid too: the access token carries only resource scopes
      const tokens = await idp.login({
        clientId: "mcp-client",
        username,
        password,
        scopes: ["openid", ...scopes],
        resource: audience
      })
      secrets.add(`user token of ${username}`, tokens.access_token)
      if (tokens.id_token !== undefined) secrets.add(`ID token of ${username}`, tokens.id_token)
      return tokens.access_token
    },
    stop: async () => {
      await inspector?.dispose()
      await Promise.all([mcp.close(), exchangeMcp.close()])
      if (broker !== undefined) {
        const exited = new Promise((r) => broker?.process.once("exit", r))
        broker.process.kill("SIGTERM")
        await Promise.race([exited, new Promise((r) => setTimeout(r, 5_000))])
        if (broker.process.exitCode === null) broker.process.kill("SIGKILL")
      }
      await closeDoors()
      await idp.close()
      await rm(dir, { recursive: true, force: true })
    }
  }
}
