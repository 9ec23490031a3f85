import { createHmac, randomBytes } from "node:crypto"
import { type CallerPolicy, hashSecret, verifySecret } from "@token-broker/config"
import { Effect } from "effect"

/**
 * Registered callers: authentication (client id + secret against the stored scrypt hash) and policy.
 *
 * scrypt is slow on purpose (tens of milliseconds), so a successful verification is remembered for a few
 * minutes under an HMAC of the presented credentials with a per-process random key: a hot caller pays
 * for scrypt once, and the cache holds no secret. Unknown ids cost the same scrypt as known ones.
 */
export interface CallerAuth {
  readonly authenticate: (clientId: string, secret: string) => Promise<CallerPolicy | undefined>
}

const VERIFIED_TTL_MS = 5 * 60_000
const MAX_VERIFIED = 10_000

export const makeCallerAuth = (callers: ReadonlyArray<CallerPolicy>): CallerAuth => {
  const byId = new Map(callers.map((caller) => [caller.id, caller]))
  const key = randomBytes(32)
  const verified = new Map<string, { readonly id: string; readonly until: number }>()
  // A hash of a random secret: unknown ids are verified against it, so they take as long as known ones.
  let dummy: Promise<string> | undefined

  const authenticate = async (clientId: string, secret: string): Promise<CallerPolicy | undefined> => {
    const mac = createHmac("sha256", key).update(clientId).update("\u0000").update(secret).digest("base64url")
    const now = Date.now()
    const hit = verified.get(mac)
    if (hit !== undefined && hit.until > now) return byId.get(hit.id)
    const caller = byId.get(clientId)
    if (caller === undefined) {
      dummy ??= Effect.runPromise(hashSecret(randomBytes(16).toString("base64url")))
      await Effect.runPromise(verifySecret(secret, await dummy))
      return undefined
    }
    if (!(await Effect.runPromise(verifySecret(secret, caller.secretHash)))) return undefined
    if (verified.size >= MAX_VERIFIED) verified.clear()
    verified.set(mac, { id: caller.id, until: now + VERIFIED_TTL_MS })
    return caller
  }
  return { authenticate }
}

/** RFC 6749 section 2.3.1: the Basic credentials are form-urlencoded before base64. */
export const parseBasic = (header: string): { clientId: string; secret: string } | undefined => {
  const match = /^Basic ([A-Za-z0-9+/=._~-]+)\s*$/i.exec(header)
  if (match === null) return undefined
  const decoded = Buffer.from(match[1] ?? "", "base64").toString("utf8")
  const colon = decoded.indexOf(":")
  if (colon < 0) return undefined
  try {
    const decodeComponent = (text: string) => decodeURIComponent(text.replace(/\+/g, "%20"))
    return {
      clientId: decodeComponent(decoded.slice(0, colon)),
      secret: decodeComponent(decoded.slice(colon + 1))
    }
  } catch {
    return undefined
  }
}

const matches = (patterns: ReadonlyArray<string>, value: string): boolean =>
  patterns.some((pattern) =>
    pattern === "*"
      ? true
      : pattern.endsWith("*")
        ? value.startsWith(pattern.slice(0, -1))
        : pattern === value
  )

export const allowsProvider = (caller: CallerPolicy, provider: string): boolean =>
  matches(caller.providers, provider)

export const allowsSubject = (caller: CallerPolicy, subject: string): boolean =>
  matches(caller.subjects, subject)

export const allowsAnyScope = (caller: CallerPolicy): boolean => caller.scopes.includes("*")

/** The first asked scope the caller may not ask for. */
export const deniedScope = (caller: CallerPolicy, scopes: ReadonlyArray<string>): string | undefined =>
  allowsAnyScope(caller) ? undefined : scopes.find((scope) => !caller.scopes.includes(scope))

export const allowsAllProviders = (caller: CallerPolicy): boolean => caller.providers.includes("*")

export const allowsAllSubjects = (caller: CallerPolicy): boolean => caller.subjects.includes("*")
