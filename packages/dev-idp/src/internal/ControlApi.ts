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

/** What a control route answers: JSON with its status, or no content (204). */
type Answer = { readonly status: number; readonly json: unknown } | "no content"

const ok = (json: unknown): Answer => ({ status: 200, json })
const created = (json: unknown): Answer => ({ status: 201, json })

/** The control routes by `METHOD path`. */
const routes: Readonly<Record<string, (idp: DevIdp, req: IncomingMessage) => Answer | Promise<Answer>>> = {
  "GET /__dev/info": (idp) =>
    ok({
      issuer: idp.issuer,
      discoveryUrl: idp.discoveryUrl,
      notesAudience: idp.notesAudience,
      notesApiUrl: idp.notesApiUrl,
      opaqueAudience: idp.opaqueAudience,
      mcpAudience: idp.mcpAudience ?? null,
      resources: idp.resources,
      clients: idp.clients,
      users: idp.users
    }),
  "GET /__dev/counters": (idp) => ok(idp.counters.snapshot()),
  "POST /__dev/counters/reset": (idp) => {
    idp.counters.reset()
    return "no content"
  },
  "GET /__dev/faults": (idp) => ok(idp.faults.active()),
  "POST /__dev/faults": async (idp, req) => {
    const specs = parse(z.array(FaultSpecSchema).or(FaultSpecSchema), await jsonBody(req))
    for (const spec of Array.isArray(specs) ? specs : [specs]) idp.faults.inject(spec)
    return created(idp.faults.active())
  },
  "DELETE /__dev/faults": (idp) => {
    idp.faults.clear()
    return "no content"
  },
  "GET /__dev/revocations": (idp) => ok(idp.revocations.list()),
  "DELETE /__dev/revocations": (idp) => {
    idp.revocations.clear()
    return "no content"
  },
  "POST /__dev/grants/revoke": async (idp, req) =>
    ok({ revoked: await idp.revokeGrantOf(parse(GrantSelectorSchema, await jsonBody(req))) }),
  "POST /__dev/resources": async (idp, req) =>
    created(idp.addResource(parse(DevIdpResourceSchema, await jsonBody(req))))
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
  const handle = Object.hasOwn(routes, route) ? routes[route] : undefined
  if (handle === undefined) {
    sendJson(res, 404, { error: "not_found", error_description: `no control route ${route}` })
    return true
  }
  try {
    const answer = await handle(idp, req)
    if (answer === "no content") sendEmpty(res, 204)
    else sendJson(res, answer.status, answer.json)
    return true
  } catch (error) {
    if (error instanceof BadRequest) {
      sendJson(res, 400, { error: "invalid_request", error_description: error.message })
      return true
    }
    throw error
  }
}
