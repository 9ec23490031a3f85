import { randomBytes } from "node:crypto"
import type { JWK } from "jose"
import type {
  Configuration,
  KoaContextWithOIDC,
  errors as OidcErrors,
  Provider,
  ResourceServer
} from "oidc-provider"
import type { DevIdpUser, ResolvedDevIdpOptions } from "../Config.js"
import type { Revocations } from "../Revocations.js"
import type { Rotations } from "../Rotations.js"
import { isRecord } from "./FaultAnswers.js"
import { errorPage, INTERACTION_PREFIX } from "./Interactions.js"
import type { Store } from "./Store.js"

export const OIDC_SCOPES = ["openid", "profile", "email", "offline_access"]

export const defaultUsers = (): DevIdpUser[] => [
  {
    sub: "u-alice",
    username: "alice",
    password: randomBytes(9).toString("base64url"),
    name: "Alice Example",
    email: "alice@example.test"
  },
  {
    sub: "u-bob",
    username: "bob",
    password: randomBytes(9).toString("base64url"),
    name: "Bob Example",
    email: "bob@example.test"
  }
]

/** What the provider's configuration reads from the running dev-idp. */
export interface ProviderDeps {
  readonly options: ResolvedDevIdpOptions
  readonly store: Store
  readonly metadata: ReadonlyArray<unknown>
  readonly signingJwk: JWK
  readonly users: ReadonlyMap<string, DevIdpUser>
  readonly errors: typeof OidcErrors
  readonly notesAudience: string
  readonly resourceInfo: (indicator: string) => ResourceServer | undefined
  readonly extraClaims: WeakMap<object, Record<string, unknown>>
  readonly plain: boolean
}

/** oidc-provider's configuration: clients, claims, features, lifetimes (refresh tokens with an idle window). */
export const providerConfiguration = (deps: ProviderDeps): Configuration => {
  const { options, store, errors, plain } = deps
  const userBySub = deps.users
  const refreshTokenTtl = (age: number): number => {
    const remaining = options.refreshTokenTtlSeconds - age
    const idle = options.refreshTokenIdleSeconds
    return Math.max(1, idle === undefined ? remaining : Math.min(idle, remaining))
  }
  return {
    adapter: (name: string) => store.adapter(name),
    clients: deps.metadata as Configuration["clients"],
    clientBasedCORS: () => false,
    cookies: { keys: [randomBytes(32).toString("base64url")] },
    claims: {
      acr: null,
      sid: null,
      auth_time: null,
      iss: null,
      openid: ["sub"],
      profile: ["name", "preferred_username"],
      email: ["email", "email_verified"]
    },
    scopes: [...OIDC_SCOPES],
    clockTolerance: 5,
    findAccount: (_ctx, sub) => {
      const user = userBySub.get(sub)
      if (user === undefined) return undefined
      return {
        accountId: user.sub,
        claims: () => ({
          sub: user.sub,
          preferred_username: user.username,
          ...(user.name === undefined ? {} : { name: user.name }),
          ...(user.email === undefined ? {} : { email: user.email, email_verified: true })
        })
      }
    },
    jwks: { keys: [deps.signingJwk] } as Configuration["jwks"],
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: {
        enabled: true,
        allowedPolicy: (_ctx, client, token) =>
          client.clientAuthMethod !== "none" || token.clientId === client.clientId
      },
      revocation: {
        enabled: true,
        allowedPolicy: (_ctx, client, token) => {
          if (token.clientId === client.clientId) return true
          if (client.clientAuthMethod === "none") return false
          throw new errors.InvalidRequest("client is not authorized to revoke the presented token")
        }
      },
      registration: { enabled: true, initialAccessToken: false },
      resourceIndicators: {
        enabled: true,
        defaultResource: (_ctx, _client, oneOf) => {
          if (oneOf === undefined) return deps.notesAudience
          return oneOf.includes(deps.notesAudience) ? deps.notesAudience : (oneOf[0] ?? deps.notesAudience)
        },
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx, indicator) => {
          const info = deps.resourceInfo(indicator)
          if (info === undefined) throw new errors.InvalidTarget(`unknown resource ${indicator}`)
          return info
        }
      },
      userinfo: { enabled: true }
    },
    extraTokenClaims: (_ctx, token) => deps.extraClaims.get(token),
    interactions: { url: (_ctx, interaction) => `${INTERACTION_PREFIX}${interaction.uid}` },
    issueRefreshToken: (_ctx, client, code) =>
      client.grantTypeAllowed("refresh_token") && (plain || code.scopes.has("offline_access")),
    pkce: { required: () => true },
    renderError: (ctx, out) => {
      ctx.type = "html"
      ctx.body = errorPage(out as unknown as Record<string, unknown>)
    },
    responseTypes: ["code"],
    rotateRefreshToken: true,
    ttl: {
      AccessToken: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? options.accessTokenTtlSeconds,
      ClientCredentials: (_ctx, token) =>
        token.resourceServer?.accessTokenTTL ?? options.accessTokenTtlSeconds,
      AuthorizationCode: 60,
      IdToken: 3600,
      Interaction: 600,
      Session: 24 * 60 * 60,
      Grant: options.refreshTokenTtlSeconds + 60,
      RefreshToken: (_ctx, token) => refreshTokenTtl(token.totalLifetime())
    }
  }
}

/**
 * Records what the token and revocation endpoints answered (rotations, revocations) and adds the refresh
 * token's remaining lifetime to a token answer (dropping the ID token for a plain OAuth 2.0 provider).
 */
export const recordTokenAnswers = (
  provider: Provider,
  { plain, rotations, revocations }: { plain: boolean; rotations: Rotations; revocations: Revocations }
): void => {
  provider.use(async (ctx: KoaContextWithOIDC, next) => {
    await next()
    const oidc = ctx.oidc as KoaContextWithOIDC["oidc"] | undefined
    if (oidc === undefined || ctx.status !== 200) return
    if (oidc.route === "token" && isRecord(ctx.body) && typeof ctx.body.refresh_token === "string") {
      const refreshToken = await provider.RefreshToken.find(ctx.body.refresh_token)
      if (refreshToken !== undefined && oidc.params?.grant_type === "refresh_token") {
        rotations.record({
          subject: String(refreshToken.accountId ?? ""),
          clientId: String(refreshToken.clientId ?? ""),
          at: Date.now()
        })
      }
      if (refreshToken?.exp !== undefined) {
        const seconds = Math.max(0, refreshToken.exp - Math.floor(Date.now() / 1000))
        ctx.body = { ...ctx.body, [plain ? "refresh_token_expires_in" : "refresh_expires_in"]: seconds }
      }
    }
    if (plain && oidc.route === "token" && isRecord(ctx.body) && "id_token" in ctx.body) {
      const { id_token: _dropped, ...rest } = ctx.body
      ctx.body = rest
    }
    if (oidc.route === "revocation" && oidc.client !== undefined) {
      const hint = oidc.params?.token_type_hint
      revocations.record({
        clientId: oidc.client.clientId,
        authMethod: String(oidc.client.clientAuthMethod),
        tokenTypeHint: typeof hint === "string" ? hint : undefined,
        at: Date.now()
      })
    }
  })
}
