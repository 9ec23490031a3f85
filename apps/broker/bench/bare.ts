/**
 * The HTTP benchmark's baseline server: a bare fastify route answering a JSON body of the size the
 * broker's answer has (BENCH_BODY_BYTES), bound to port 0 in this process. Prints its URL on stdout.
 * A form body (the exchange's baseline is sent the exchange's own body) is read and parsed as the
 * broker's /oauth/token does, so both pay for receiving it.
 */
import Fastify from "fastify"

const bodyBytes = Number(process.env.BENCH_BODY_BYTES ?? 880)
const filler = "x".repeat(Math.max(0, bodyBytes - JSON.stringify({ data: "" }).length))
const bare = Fastify({ logger: false })
bare.addContentTypeParser(
  "application/x-www-form-urlencoded",
  { parseAs: "string" },
  (_request, body, done) => done(null, new URLSearchParams(body as string))
)
bare.post("/bare", async () => ({ data: filler }))
await bare.listen({ port: 0, host: "127.0.0.1" })
const address = bare.server.address()
if (typeof address !== "object" || address === null) throw new Error("the bare server has no address")
console.log(`http://127.0.0.1:${address.port}`)
process.once("SIGTERM", () => void bare.close().then(() => process.exit(0)))
