/**
 * The tools/call benchmark's client side: JSON-RPC over the Streamable HTTP transport (initialize, one
 * session's headers, a tool call whose error answer throws) for its set-up, and one measurement by
 * `load.ts` in a process of its own.
 */
import { spawn } from "node:child_process"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const here = dirname(fileURLToPath(import.meta.url))

export interface Session {
  readonly url: string
  readonly headers: Record<string, string>
}
const BASE_HEADERS = { "content-type": "application/json", accept: "application/json, text/event-stream" }
/** One POST; the answer's JSON-RPC message (an SSE `data:` line or a JSON body) and its size. */
export const post = async (url: string, headers: Record<string, string>, message: object) => {
  const response = await fetch(url, { method: "POST", headers, body: JSON.stringify(message) })
  const text = await response.text()
  const data = text.split("\n").find((line) => line.startsWith("data: "))
  const json =
    data === undefined ? (text.length === 0 ? undefined : JSON.parse(text)) : JSON.parse(data.slice(6))
  return { response, bytes: Buffer.byteLength(text), message: json as { result?: Record<string, unknown> } }
}
export const openSession = async (url: string, auth: Record<string, string>): Promise<Session> => {
  const init = await post(
    url,
    { ...BASE_HEADERS, ...auth },
    {
      jsonrpc: "2.0",
      id: 0,
      method: "initialize",
      params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "bench", version: "0" } }
    }
  )
  const id = init.response.headers.get("mcp-session-id")
  const version = init.message.result?.protocolVersion
  if (id === null || typeof version !== "string") throw new Error(`initialize failed at ${url}`)
  const headers = { ...BASE_HEADERS, ...auth, "mcp-session-id": id, "mcp-protocol-version": version }
  await post(url, headers, { jsonrpc: "2.0", method: "notifications/initialized" })
  return { url, headers }
}
export const callTool = async (session: Session, name: string, args: object) => {
  const answer = await post(session.url, session.headers, {
    jsonrpc: "2.0",
    id: 1,
    method: "tools/call",
    params: { name, arguments: args }
  })
  if (answer.message.result === undefined || answer.message.result.isError === true) {
    throw new Error(
      `${name} failed: ${answer.response.status} ${JSON.stringify(answer.message).slice(0, 300)}`
    )
  }
  return answer
}

export interface Load {
  readonly rps: number
  readonly p99ms: number
  readonly requests: number
  readonly failures: number
  readonly sample?: string
}
/** One measurement by `load.ts` in a process of its own; its options (the token too) go on its stdin. */
export const load = async (session: Session, duration: number, connections: number): Promise<Load> => {
  const child = spawn(process.execPath, ["--import", "tsx", join(here, "load.ts")], {
    cwd: join(here, ".."),
    stdio: ["pipe", "pipe", "inherit"]
  })
  child.stdin.end(
    JSON.stringify({
      url: session.url,
      headers: session.headers,
      tool: "notes_list",
      connections,
      seconds: duration
    })
  )
  let out = ""
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    out += chunk
  })
  const code = await new Promise<number | null>((done) => child.once("exit", done))
  if (code !== 0) throw new Error(`the load generator exited with code ${code}`)
  return JSON.parse(out) as Load
}
