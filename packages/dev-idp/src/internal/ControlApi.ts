import type { IncomingMessage, ServerResponse } from "node:http"
import { z } from "zod"
import { DevIdpResourceSchema } from "../Config.js"
import type { DevIdp } from "../DevIdp.js"
import { FaultSpecSchema } from "../Faults.js"
import { escapeHtml, readBody, sendEmpty, sendHtml, sendJson } from "./Http.js"

const GrantSelectorSchema = z.union([
  z.object({ refreshToken: z.string().min(1) }).strict(),
  z.object({ accessToken: z.string().min(1) }).strict(),
  z.object({ subject: z.string().min(1), clientId: z.string().min(1).optional() }).strict()
])

class BadRequest extends Error {}

const jsonBody = async (req: IncomingMessage): Promise<unknown> => {
  const text = (await readBody(req)).toString("utf8")
  try {
    return text.length === 0 ? {} : JSON.parse(text)
  } catch {
    throw new BadRequest("request body is not JSON")
  }
}

const parse = <T>(schema: z.ZodType<T>, value: unknown): T => {
  const result = schema.safeParse(value)
  if (!result.success) throw new BadRequest(z.prettifyError(result.error))
  return result.data
}

const callbackPage = (url: URL): string => {
  const rows = [...url.searchParams]
    .map(([key, value]) => `<tr><th>${escapeHtml(key)}</th><td><code>${escapeHtml(value)}</code></td></tr>`)
    .join("")
  return `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>dev-idp callback</title></head>
<body><h1>Authorization callback</h1><p>dev-idp's default redirect URI: it only shows what arrived.</p>
<table>${rows}</table></body></html>`
}

/**
 * The test-control API under `/__dev/` (and the default redirect URI `/__dev/callback`, always on).
 * Returns false when the path is not one of its routes.
 */
export const handleControl = async (
  idp: DevIdp,
  enabled: boolean,
  req: IncomingMessage,
  res: ServerResponse,
  path: string
): Promise<boolean> => {
  const method = req.method ?? "GET"
  if (path === "/__dev/callback" && method === "GET") {
    sendHtml(res, 200, callbackPage(new URL(req.url ?? "/", idp.issuer)))
    return true
  }
  if (!enabled) return false
  const route = `${method} ${path}`
  try {
    switch (route) {
      case "GET /__dev/info":
        sendJson(res, 200, {
          issuer: idp.issuer,
          discoveryUrl: idp.discoveryUrl,
          notesAudience: idp.notesAudience,
          notesApiUrl: idp.notesApiUrl,
          opaqueAudience: idp.opaqueAudience,
          mcpAudience: idp.mcpAudience ?? null,
          resources: idp.resources,
          clients: idp.clients,
          users: idp.users
        })
        return true
      case "GET /__dev/counters":
        sendJson(res, 200, idp.counters.snapshot())
        return true
      case "POST /__dev/counters/reset":
        idp.counters.reset()
        sendEmpty(res, 204)
        return true
      case "GET /__dev/faults":
        sendJson(res, 200, idp.faults.active())
        return true
      case "POST /__dev/faults": {
        const body = await jsonBody(req)
        const specs = parse(z.array(FaultSpecSchema).or(FaultSpecSchema), body)
        for (const spec of Array.isArray(specs) ? specs : [specs]) idp.faults.inject(spec)
        sendJson(res, 201, idp.faults.active())
        return true
      }
      case "DELETE /__dev/faults":
        idp.faults.clear()
        sendEmpty(res, 204)
        return true
      case "GET /__dev/revocations":
        sendJson(res, 200, idp.revocations.list())
        return true
      case "DELETE /__dev/revocations":
        idp.revocations.clear()
        sendEmpty(res, 204)
        return true
      case "POST /__dev/grants/revoke": {
        const selector = parse(GrantSelectorSchema, await jsonBody(req))
        sendJson(res, 200, { revoked: await idp.revokeGrantOf(selector) })
        return true
      }
      case "POST /__dev/resources": {
        const resource = idp.addResource(parse(DevIdpResourceSchema, await jsonBody(req)))
        sendJson(res, 201, resource)
        return true
      }
      default:
        sendJson(res, 404, { error: "not_found", error_description: `no control route ${route}` })
        return true
    }
  } catch (error) {
    if (error instanceof BadRequest) {
      sendJson(res, 400, { error: "invalid_request", error_description: error.message })
      return true
    }
    throw error
  }
}
