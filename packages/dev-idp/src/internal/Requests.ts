import { IncomingMessage, type ServerResponse } from "node:http"
import { isRecord } from "./FaultAnswers.js"
import { readBody } from "./Http.js"
import { OIDC_SCOPES } from "./ProviderConfig.js"

/** The client a token request names: HTTP Basic, `client_id`, or a client assertion's subject. */
export const clientIdOf = (
  authorization: string | undefined,
  params: URLSearchParams
): string | undefined => {
  if (authorization !== undefined && /^basic /i.test(authorization)) {
    const decoded = Buffer.from(authorization.slice(6).trim(), "base64").toString("utf8")
    const user = decoded.slice(0, Math.max(0, decoded.indexOf(":")))
    try {
      return decodeURIComponent(user.replace(/\+/g, "%20"))
    } catch {
      return user
    }
  }
  const clientId = params.get("client_id")
  if (clientId !== null) return clientId
  const assertion = params.get("client_assertion")
  const payload = assertion?.split(".")[1]
  if (payload !== undefined) {
    try {
      const claims = JSON.parse(Buffer.from(payload, "base64url").toString("utf8")) as Record<string, unknown>
      const sub = claims.sub ?? claims.iss
      return typeof sub === "string" ? sub : undefined
    } catch {
      return undefined
    }
  }
  return undefined
}

/** A request whose body was already read, handed on to oidc-provider as if it were unread. */
export const replayRequest = (req: IncomingMessage, body: Buffer): IncomingMessage => {
  const replay = new IncomingMessage(req.socket)
  replay.method = req.method ?? "POST"
  replay.url = req.url ?? "/"
  replay.headers = req.headers
  replay.rawHeaders = req.rawHeaders
  replay.httpVersion = req.httpVersion
  replay.httpVersionMajor = req.httpVersionMajor
  replay.httpVersionMinor = req.httpVersionMinor
  replay.complete = true
  replay.push(body)
  replay.push(null)
  return replay
}

/** GitHub-style: an OAuth error answer of the token endpoint goes out with status 200, same JSON body. */
export const answerErrorsWith200 = (res: ServerResponse) => {
  const end = res.end.bind(res) as (chunk?: unknown) => ServerResponse
  res.end = ((chunk?: unknown) => {
    if (res.statusCode >= 400 && res.statusCode < 500 && chunk !== undefined && chunk !== null) {
      try {
        const parsed: unknown = JSON.parse(Buffer.from(chunk as Buffer).toString("utf8"))
        if (isRecord(parsed) && typeof parsed.error === "string") {
          res.statusCode = 200
          res.removeHeader("www-authenticate")
        }
      } catch {
        // not JSON: passed on as it is
      }
    }
    return end(chunk)
  }) as typeof res.end
}

/**
 * Dynamic registration (RFC 7591). MCP clients register with the resource scopes they will ask for
 * (`scope: "mcp:tools notes:read"`); oidc-provider only knows its OpenID scopes at registration (a
 * client's `scope` gates only those) and would refuse the client. Resource scopes are dropped from
 * the metadata: which of them a token gets is decided per resource at authorization.
 */
export const handleRegistration =
  (providerCallback: (req: IncomingMessage, res: ServerResponse) => void) =>
  async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const body = await readBody(req)
    let metadata: unknown
    try {
      metadata = JSON.parse(body.toString("utf8"))
    } catch {
      return providerCallback(replayRequest(req, body), res)
    }
    if (!isRecord(metadata) || typeof metadata.scope !== "string") {
      return providerCallback(replayRequest(req, body), res)
    }
    const { scope, ...rest } = metadata
    const kept = scope.split(" ").filter((value) => OIDC_SCOPES.includes(value))
    const rewritten = Buffer.from(JSON.stringify(kept.length > 0 ? { ...rest, scope: kept.join(" ") } : rest))
    const replay = replayRequest(req, rewritten)
    replay.headers = { ...req.headers, "content-length": String(rewritten.length) }
    providerCallback(replay, res)
  }
