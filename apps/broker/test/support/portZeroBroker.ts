import { randomBytes } from "node:crypto"
import { type ConfigFileInput, hashSecret, parseConfig } from "@token-broker/config"
import type { DevIdp } from "@token-broker/dev-idp"
import { Effect } from "effect"
import { type RunningBroker, startBroker } from "../../src/Broker.js"
import { type CallerSpec, MCP_AUDIENCE } from "./stack.js"

/**
 * The HTTP broker bound to port 0 by the process that serves it (this test process), in front of a
 * dev-idp. Its redirect URI cannot name a port nobody knows yet, so the broker runs as it does behind
 * a load balancer: `server.publicUrl` is a fixed public origin (registered at dev-idp), and
 * `finishConsent` plays the load balancer, forwarding the browser's callback to the bound address.
 */
export const PUBLIC_URL = "http://broker.example.test"
export const CALLBACK = `${PUBLIC_URL}/connect/callback`

export interface CallerPolicyInput {
  readonly caller: CallerSpec
  readonly providers?: ReadonlyArray<string>
  readonly subjects?: ReadonlyArray<string>
  readonly scopes?: ReadonlyArray<string>
  readonly backgroundTokens?: boolean
  readonly tokenExchange?: boolean
  readonly grants?: "none" | "read" | "manage"
}

export interface PortZeroBrokerOptions {
  readonly idp: DevIdp
  readonly sqliteFile: string
  /** The local key ring: one key. */
  readonly key: { readonly kid: string; readonly material: string }
  readonly callers: ReadonlyArray<CallerPolicyInput>
  readonly rateLimit?: { readonly max: number; readonly timeWindow: string } | undefined
  readonly broker?: ConfigFileInput["broker"] | undefined
  readonly busyTimeout?: string | undefined
}

/**
 * The two providers every broker of these tests has on dev-idp, with their secrets from the env:
 * "notes" (client_secret_basic, the notes API's JWT access tokens) and "other" (client_secret_post,
 * the API of opaque tokens). A stack lays its own settings (token exchange, discovery) over them.
 */
export const devIdpProviders = (idp: DevIdp) => ({
  notes: {
    id: "notes",
    issuer: idp.issuer,
    clientId: "token-broker",
    clientAuthentication: {
      method: "client_secret_basic" as const,
      clientSecret: { env: "NOTES_CLIENT_SECRET" }
    },
    scopes: ["notes:read", "notes:write"],
    resource: idp.notesAudience,
    allowInsecureRequests: true
  },
  other: {
    id: "other",
    issuer: idp.issuer,
    clientId: "token-broker-post",
    clientAuthentication: {
      method: "client_secret_post" as const,
      clientSecret: { env: "OTHER_CLIENT_SECRET" }
    },
    scopes: ["notes:read"],
    resource: idp.opaqueAudience,
    allowInsecureRequests: true
  }
})

/** A caller with a fresh random secret. */
export const newCaller = (id: string): CallerSpec => ({ id, secret: randomBytes(24).toString("base64url") })

export const startPortZeroBroker = async (options: PortZeroBrokerOptions): Promise<RunningBroker> => {
  const { idp } = options
  const env = {
    NOTES_CLIENT_SECRET: idp.client("token-broker").clientSecret,
    OTHER_CLIENT_SECRET: idp.client("token-broker-post").clientSecret,
    TB_KEY: options.key.material
  }
  const callers = await Promise.all(
    options.callers.map(async (policy) => ({
      id: policy.caller.id,
      secretHash: await Effect.runPromise(hashSecret(policy.caller.secret)),
      providers: [...(policy.providers ?? ["*"])],
      subjects: [...(policy.subjects ?? ["*"])],
      scopes: [...(policy.scopes ?? ["*"])],
      backgroundTokens: policy.backgroundTokens ?? false,
      tokenExchange: policy.tokenExchange ?? false,
      // the user tokens the tests exchange are issued to dev-idp's MCP client
      ...(policy.tokenExchange === true ? { subjectTokens: { clientIds: ["mcp-client"] } } : {}),
      grants: policy.grants ?? "none"
    }))
  )
  const file: ConfigFileInput = {
    server: {
      host: "127.0.0.1",
      port: 0,
      publicUrl: PUBLIC_URL,
      logLevel: "silent",
      shutdownTimeout: "5 seconds",
      returnToOrigins: ["http://app.example.test"],
      ...(options.rateLimit === undefined ? {} : { rateLimit: options.rateLimit })
    },
    storage: {
      kind: "sqlite",
      filename: options.sqliteFile,
      ...(options.busyTimeout === undefined ? {} : { busyTimeout: options.busyTimeout })
    },
    keyRing: { kind: "local", keys: [{ kid: options.key.kid, env: "TB_KEY" }] },
    providers: [
      { ...devIdpProviders(idp).notes, tokenExchange: {} },
      { ...devIdpProviders(idp).other, tokenExchange: {} }
    ],
    sessionTokens: { audience: MCP_AUDIENCE, issuers: [{ issuer: idp.issuer }], allowInsecureRequests: true },
    callers,
    ...(options.broker === undefined ? {} : { broker: options.broker })
  }
  const config = await Effect.runPromise(parseConfig(file, env))
  return startBroker(config)
}

/**
 * Consent as the user's browser gives it: dev-idp's login and consent pages (headless), then the
 * redirect to the public callback, delivered to the broker's bound address. Answers the result page's status.
 */
export const finishConsent = async (
  broker: RunningBroker,
  idp: DevIdp,
  authorizationUrl: URL,
  user: { readonly username: string; readonly password: string }
): Promise<number> => {
  const redirect = await idp.driveAuthorization(authorizationUrl, user)
  if (!redirect.href.startsWith(CALLBACK)) throw new Error("dev-idp redirected elsewhere than the callback")
  const page = await fetch(`${broker.url}${redirect.pathname}${redirect.search}`)
  await page.text()
  return page.status
}
