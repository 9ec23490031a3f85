import { randomBytes } from "node:crypto"
import { exportJWK, generateKeyPair, type JWK } from "jose"
import type { ResolvedDevIdpOptions } from "./Config.js"

export const TOKEN_EXCHANGE_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:token-exchange"

/** A client of dev-idp, with its credentials (dev only: secrets and keys are meant for tests). */
export interface DevIdpClient {
  readonly clientId: string
  /** For client_secret_basic / client_secret_post clients. */
  readonly clientSecret?: string
  readonly tokenEndpointAuthMethod: string
  /** For private_key_jwt clients created by dev-idp: the private key (ES256) to sign client assertions. */
  readonly privateJwk?: JWK
  readonly redirectUris: ReadonlyArray<string>
  readonly grantTypes: ReadonlyArray<string>
}

/** The default clients by id. */
export const DefaultClientIds = {
  basic: "token-broker",
  post: "token-broker-post",
  privateKeyJwt: "token-broker-jwt",
  public: "mcp-client",
  /** A native app (RFC 8252): its loopback redirect URIs match on any port. */
  native: "token-broker-native"
} as const

/**
 * The redirect URIs of the native client. RFC 8252 section 7.3: for loopback redirect URIs the port is
 * not compared (oidc-provider does so for `application_type: "native"`), so a command-line app binds
 * port 0 and sends `http://127.0.0.1:<bound port>/callback`.
 */
export const LOOPBACK_REDIRECT_URIS = ["http://127.0.0.1/callback", "http://[::1]/callback"] as const

const BROKER_GRANT_TYPES = [
  "authorization_code",
  "refresh_token",
  TOKEN_EXCHANGE_GRANT_TYPE,
  "client_credentials"
] as const

const secret = (): string => randomBytes(32).toString("base64url")

/** The redirect URI every default client has: a page on dev-idp itself that shows the callback. */
export const defaultRedirectUri = (issuer: string): string => `${issuer}/__dev/callback`

export interface BuiltClients {
  readonly clients: ReadonlyArray<DevIdpClient>
  /** oidc-provider static client metadata. */
  readonly metadata: ReadonlyArray<Record<string, unknown>>
}

export const buildClients = async (issuer: string, options: ResolvedDevIdpOptions): Promise<BuiltClients> => {
  const redirectUris = [defaultRedirectUri(issuer), ...options.redirectUris]
  const secretFor = (clientId: string): string => options.clientSecrets[clientId] ?? secret()
  const { privateKey, publicKey } = await generateKeyPair("ES256", { extractable: true })
  const kid = `${DefaultClientIds.privateKeyJwt}-${randomBytes(6).toString("hex")}`
  const privateJwk: JWK = { ...(await exportJWK(privateKey)), kid, alg: "ES256", use: "sig" }
  const publicJwk: JWK = { ...(await exportJWK(publicKey)), kid, alg: "ES256", use: "sig" }

  // plain OAuth 2.0 mode has no token exchange, so no client may be registered for it
  const brokerGrants = BROKER_GRANT_TYPES.filter(
    (grant) => options.plainOAuth === undefined || grant !== TOKEN_EXCHANGE_GRANT_TYPE
  )
  const basic = secretFor(DefaultClientIds.basic)
  const post = secretFor(DefaultClientIds.post)
  const native = secretFor(DefaultClientIds.native)
  const common = {
    grant_types: [...brokerGrants],
    response_types: ["code"],
    redirect_uris: redirectUris
  }
  const metadata: Array<Record<string, unknown>> = [
    {
      ...common,
      client_id: DefaultClientIds.basic,
      client_secret: basic,
      token_endpoint_auth_method: "client_secret_basic"
    },
    {
      ...common,
      client_id: DefaultClientIds.post,
      client_secret: post,
      token_endpoint_auth_method: "client_secret_post"
    },
    {
      ...common,
      client_id: DefaultClientIds.privateKeyJwt,
      token_endpoint_auth_method: "private_key_jwt",
      token_endpoint_auth_signing_alg: "ES256",
      jwks: { keys: [publicJwk] }
    },
    {
      client_id: DefaultClientIds.public,
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      redirect_uris: redirectUris,
      token_endpoint_auth_method: "none"
    },
    {
      grant_types: [...brokerGrants],
      response_types: ["code"],
      application_type: "native",
      redirect_uris: [...LOOPBACK_REDIRECT_URIS],
      client_id: DefaultClientIds.native,
      client_secret: native,
      token_endpoint_auth_method: "client_secret_basic"
    }
  ]
  const clients: DevIdpClient[] = [
    {
      clientId: DefaultClientIds.basic,
      clientSecret: basic,
      tokenEndpointAuthMethod: "client_secret_basic",
      redirectUris,
      grantTypes: [...brokerGrants]
    },
    {
      clientId: DefaultClientIds.post,
      clientSecret: post,
      tokenEndpointAuthMethod: "client_secret_post",
      redirectUris,
      grantTypes: [...brokerGrants]
    },
    {
      clientId: DefaultClientIds.privateKeyJwt,
      tokenEndpointAuthMethod: "private_key_jwt",
      privateJwk,
      redirectUris,
      grantTypes: [...brokerGrants]
    },
    {
      clientId: DefaultClientIds.public,
      tokenEndpointAuthMethod: "none",
      redirectUris,
      grantTypes: ["authorization_code", "refresh_token"]
    },
    {
      clientId: DefaultClientIds.native,
      clientSecret: native,
      tokenEndpointAuthMethod: "client_secret_basic",
      redirectUris: [...LOOPBACK_REDIRECT_URIS],
      grantTypes: [...brokerGrants]
    }
  ]

  for (const extra of options.clients) {
    const replaced = metadata.findIndex((m) => m.client_id === extra.client_id)
    if (replaced !== -1) throw new Error(`client ${extra.client_id} is already defined by dev-idp`)
    const authMethod = extra.token_endpoint_auth_method ?? "client_secret_basic"
    const needsSecret = authMethod === "client_secret_basic" || authMethod === "client_secret_post"
    const clientSecret = extra.client_secret ?? (needsSecret ? secret() : undefined)
    const grantTypes = extra.grant_types ?? ["authorization_code", "refresh_token"]
    const clientRedirectUris = extra.redirect_uris ?? redirectUris
    const entry = {
      response_types: ["code"],
      ...extra,
      grant_types: grantTypes,
      redirect_uris: clientRedirectUris,
      token_endpoint_auth_method: authMethod,
      ...(clientSecret === undefined ? {} : { client_secret: clientSecret })
    }
    metadata.push(entry)
    clients.push({
      clientId: extra.client_id,
      ...(clientSecret === undefined ? {} : { clientSecret }),
      tokenEndpointAuthMethod: authMethod,
      redirectUris: clientRedirectUris,
      grantTypes
    })
  }
  return { clients, metadata }
}
