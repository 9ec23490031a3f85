import type { DevIdp } from "@token-broker/dev-idp"

/** The claims of a JWT, decoded without verification (the notes API verifies). */
const claimsOf = (token: string): Record<string, unknown> | undefined => {
  const payload = token.split(".")[1]
  if (payload === undefined) return undefined
  try {
    return JSON.parse(Buffer.from(payload, "base64url").toString("utf8")) as Record<string, unknown>
  } catch {
    return undefined
  }
}

/**
 * Why a served token is wrong, or undefined when it is right: it must be a JWT from dev-idp for this
 * subject (`sub`), the notes API (`aud`), with the grant's scopes, unexpired when it was served, and the
 * notes API must accept it (checked when it still has half a second to live; JWT access tokens are
 * self-contained, so "accepted" means genuine, unexpired and for the right audience).
 */
export const wrongTokenReason = async (
  idp: DevIdp,
  subject: string,
  token: string,
  servedAt: number,
  alreadyAccepted = false
): Promise<string | undefined> => {
  const claims = claimsOf(token)
  if (claims === undefined) return "not a JWT"
  if (claims.iss !== idp.issuer) return `iss ${String(claims.iss)}`
  if (claims.sub !== subject) return `sub ${String(claims.sub)} for subject ${subject}`
  const aud = Array.isArray(claims.aud) ? claims.aud : [claims.aud]
  if (!aud.includes(idp.notesAudience)) return `aud ${JSON.stringify(claims.aud)}`
  const scopes = typeof claims.scope === "string" ? claims.scope.split(" ") : []
  for (const scope of ["notes:read", "notes:write"])
    if (!scopes.includes(scope)) return `scope ${claims.scope}`
  const exp = typeof claims.exp === "number" ? claims.exp * 1000 : 0
  if (exp <= servedAt) return `expired ${servedAt - exp} ms before it was served`
  if (!alreadyAccepted && exp - Date.now() > 500) {
    const response = await fetch(`${idp.notesApiUrl}/notes`, {
      headers: { authorization: `Bearer ${token}` }
    })
    await response.arrayBuffer()
    if (response.status !== 200) return `the notes API answered ${response.status}`
  }
  return undefined
}

/**
 * Checks tokens as they arrive (a load run streams them) and counts the wrong ones. Checks run one at
 * a time in the background; `settle` waits for those still queued.
 */
export type TokenChecker = ReturnType<typeof tokenChecker>

export const tokenChecker = (idp: DevIdp) => {
  let checked = 0
  const wrong: Array<string> = []
  const accepted = new Set<string>()
  let chain: Promise<void> = Promise.resolve()
  return {
    /**
     * Checks one serve: the token's claims and its expiry at `servedAt` every time; the notes API is
     * asked once per token. With `grant`, a token the broker took from the store or a refresh while the
     * grant read anything but active is wrong (a cached one may outlive a mark made by another process).
     */
    check: (
      subject: string,
      token: string,
      servedAt: number,
      grant?: { readonly source: string; readonly status: string }
    ) => {
      chain = chain.then(async () => {
        const reason = await wrongTokenReason(idp, subject, token, servedAt, accepted.has(token)).catch(
          (error: unknown) => `check failed: ${String(error)}`
        )
        checked++
        if (reason !== undefined) wrong.push(`${subject}: ${reason}`)
        else accepted.add(token)
        if (
          grant !== undefined &&
          grant.source !== "cache" &&
          grant.status !== "active" &&
          grant.status !== "unknown"
        ) {
          wrong.push(`${subject}: served from ${grant.source} while the grant read ${grant.status}`)
        }
      })
    },
    settle: async () => {
      await chain
      return { checked, wrong: [...wrong] }
    }
  }
}
