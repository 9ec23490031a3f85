/**
 * The tools/call benchmark's load generator, in a process of its own: autocannon's programmatic API
 * sending JSON-RPC `tools/call` POSTs of the Streamable HTTP transport, each with an id of its own (one
 * MCP session serves every connection, and a session answers each request id once). Every answer is
 * read: one that is not a JSON-RPC result, or is a tool error (`isError`), counts as a failure. The
 * options arrive as JSON on stdin (the bearer token stays off the command line); the figures leave as
 * one JSON line on stdout.
 */
import autocannon from "autocannon"

interface LoadOptions {
  readonly url: string
  readonly headers: Record<string, string>
  readonly tool: string
  readonly connections: number
  readonly seconds: number
}

const chunks: Array<Buffer> = []
for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
const options = JSON.parse(Buffer.concat(chunks).toString("utf8")) as LoadOptions

let nextId = 1
let badAnswers = 0
let sample: string | undefined
const result = await autocannon({
  url: options.url,
  connections: options.connections,
  duration: options.seconds,
  requests: [
    {
      method: "POST",
      headers: options.headers,
      setupRequest: (request) => ({
        ...request,
        body: JSON.stringify({
          jsonrpc: "2.0",
          id: nextId++,
          method: "tools/call",
          params: { name: options.tool, arguments: {} }
        })
      }),
      onResponse: (status, body) => {
        if (status === 200 && body.includes('"result":') && !body.includes('"isError":true')) return
        badAnswers++
        sample ??= `${status} ${body.slice(0, 300)}`
      }
    }
  ]
})
console.log(
  JSON.stringify({
    rps: result.requests.average,
    p99ms: result.latency.p99,
    requests: result.requests.total,
    // a non-2xx answer is a bad answer too
    failures: result.errors + result.timeouts + badAnswers,
    sample
  })
)
