import type { IncomingMessage, ServerResponse } from "node:http"

const BODY_LIMIT = 256 * 1024

export class BodyTooLarge extends Error {
  readonly code = "body_too_large"
}

export const readBody = async (req: IncomingMessage): Promise<Buffer> => {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req) {
    const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk))
    size += buffer.length
    if (size > BODY_LIMIT) throw new BodyTooLarge("request body too large")
    chunks.push(buffer)
  }
  return Buffer.concat(chunks, size)
}

export const sendJson = (
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {}
): void => sendJsonText(res, status, JSON.stringify(body), headers)

/** A JSON answer already serialized. */
export const sendJsonText = (
  res: ServerResponse,
  status: number,
  text: string,
  headers: Record<string, string> = {}
): void => {
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "cache-control": "no-store",
    "content-length": Buffer.byteLength(text),
    ...headers
  })
  res.end(text)
}

export const sendEmpty = (
  res: ServerResponse,
  status: number,
  headers: Record<string, string> = {}
): void => {
  res.writeHead(status, { "content-length": "0", ...headers })
  res.end()
}

export const sendHtml = (res: ServerResponse, status: number, html: string): void => {
  res.writeHead(status, {
    "content-type": "text/html; charset=utf-8",
    "cache-control": "no-store",
    "content-length": Buffer.byteLength(html)
  })
  res.end(html)
}

/** HTML escaping for the pages above: the `escape-html` library (`&`, `<`, `>`, `"`, `'`). */
export { default as escapeHtml } from "escape-html"
