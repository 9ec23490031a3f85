/**
 * The tools/call benchmark's baseline: a minimal MCP server on `@modelcontextprotocol/sdk` (the app's
 * version) with stateful Streamable HTTP sessions, no authentication, and one `notes_list` tool that
 * answers, through the app's own `listResult` and output schema, a list of notes held in memory: the
 * notes API's answer the benchmark fetched (the JSON file BENCH_NOTES_FILE). Bound to port 0 on
 * 127.0.0.1; prints its MCP endpoint on stdout.
 */
import { randomUUID } from "node:crypto"
import { readFileSync } from "node:fs"
import { createServer } from "node:http"
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js"
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js"
import { isInitializeRequest } from "@modelcontextprotocol/sdk/types.js"
import { z } from "zod"
import { NoteSchema } from "../src/internal/notesApi.js"
import { listResult, NoteSummaryOut } from "../src/tools/notes.js"

const notesFile = process.env.BENCH_NOTES_FILE
if (notesFile === undefined) throw new Error("BENCH_NOTES_FILE names no notes file")
const notes = z.array(NoteSchema).parse(JSON.parse(readFileSync(notesFile, "utf8")))

const sessions = new Map<string, StreamableHTTPServerTransport>()
const openSession = async () => {
  const server = new McpServer({ name: "bare", version: "0.0.0" }, { capabilities: { tools: {} } })
  server.registerTool(
    "notes_list",
    {
      title: "List notes",
      inputSchema: { category: z.string().optional() },
      outputSchema: { notes: z.array(NoteSummaryOut) }
    },
    async () => listResult(notes)
  )
  const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
    sessionIdGenerator: () => randomUUID(),
    onsessioninitialized: (id) => {
      sessions.set(id, transport)
    }
  })
  await server.connect(transport)
  return transport
}

const http = createServer((request, response) => {
  const chunks: Array<Buffer> = []
  request.on("data", (chunk: Buffer) => chunks.push(chunk))
  request.on("end", () => {
    void (async () => {
      const body: unknown = chunks.length === 0 ? undefined : JSON.parse(Buffer.concat(chunks).toString())
      const id = request.headers["mcp-session-id"]
      const transport =
        typeof id === "string"
          ? sessions.get(id)
          : isInitializeRequest(body)
            ? await openSession()
            : undefined
      if (transport === undefined) {
        response.writeHead(404).end()
        return
      }
      await transport.handleRequest(request, response, body)
    })()
  })
})
http.listen(0, "127.0.0.1", () => {
  const address = http.address()
  if (typeof address !== "object" || address === null) throw new Error("the bare server has no address")
  console.log(`http://127.0.0.1:${address.port}/mcp`)
})
process.once("SIGTERM", () => {
  http.closeAllConnections()
  http.close(() => process.exit(0))
})
