import { createServer, type IncomingMessage, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { afterAll, beforeAll } from "@effect/vitest"
import type { DevIdp, DevIdpOptions } from "@token-broker/dev-idp"
import { withDevIdp } from "./harness.js"

/**
 * What the proxy does to the answer of one refresh request that dev-idp has already processed (and so
 * rotated the refresh token): the faults of a provider that commits a rotation, then fails to deliver it.
 */
export type AnswerFault =
  /** Replaces the answer with this HTTP status (a gateway error after the provider committed). */
  | { readonly kind: "status"; readonly status: number }
  /** Keeps the JSON body but sets a `token_type` the client library refuses. */
  | { readonly kind: "token_type" }
  /** Replaces the body with text that is not JSON, status 200. */
  | { readonly kind: "not_json" }
  /** Answers status 200 with this OAuth error as a form body (GitHub without `Accept: application/json`). */
  | { readonly kind: "form_error"; readonly error: string }

export interface TokenProxy {
  /** The proxy's base URL: point a provider's `internalBaseUrl.to` at it. */
  readonly url: string
  /** Applies `fault` to the next refresh answer. */
  readonly afterNextRefresh: (fault: AnswerFault) => void
  /** Refresh requests that went through the proxy. */
  readonly refreshes: () => number
  /** The refresh tokens dev-idp issued to code exchanges through the proxy (test memory only). */
  readonly codeExchangeRefreshTokens: () => ReadonlyArray<string>
  readonly close: () => Promise<void>
}

const readBody = (req: IncomingMessage): Promise<Buffer> =>
  new Promise((resolve, reject) => {
    const chunks: Array<Buffer> = []
    req.on("data", (chunk: Buffer) => chunks.push(chunk))
    req.on("end", () => resolve(Buffer.concat(chunks)))
    req.on("error", reject)
  })

/**
 * A reverse proxy in front of dev-idp that forwards every request and, where asked, rewrites the answer
 * of a refresh after dev-idp processed it. dev-idp's own faults act before processing; these act after.
 */
export const startTokenProxy = async (target: string): Promise<TokenProxy> => {
  const faults: Array<AnswerFault> = []
  let refreshes = 0
  const issued: Array<string> = []
  const server: Server = createServer((req, res) => {
    void (async () => {
      const body = await readBody(req)
      const headers = new Headers()
      for (const [name, value] of Object.entries(req.headers)) {
        if (typeof value === "string" && name !== "host" && name !== "connection") headers.set(name, value)
      }
      const grantType =
        req.method === "POST" && (req.url ?? "").startsWith("/token")
          ? new URLSearchParams(body.toString("utf8")).get("grant_type")
          : null
      const isRefresh = grantType === "refresh_token"
      const upstream = await fetch(new URL(req.url ?? "/", target), {
        method: req.method ?? "GET",
        headers,
        body: req.method === "GET" || req.method === "HEAD" ? null : body,
        redirect: "manual"
      })
      const text = await upstream.text()
      if (grantType === "authorization_code" && upstream.ok) {
        const token = (JSON.parse(text) as { refresh_token?: unknown }).refresh_token
        if (typeof token === "string") issued.push(token)
      }
      const fault = isRefresh ? faults.shift() : undefined
      if (isRefresh) refreshes += 1
      if (fault === undefined) {
        res.writeHead(upstream.status, {
          "content-type": upstream.headers.get("content-type") ?? "application/json"
        })
        res.end(text)
        return
      }
      switch (fault.kind) {
        case "status":
          res.writeHead(fault.status, { "content-type": "text/html" })
          res.end("<html><body>Bad Gateway</body></html>")
          return
        case "token_type":
          res.writeHead(200, { "content-type": "application/json" })
          res.end(JSON.stringify({ ...(JSON.parse(text) as object), token_type: "mac" }))
          return
        case "not_json":
          res.writeHead(200, { "content-type": "application/json" })
          res.end(`${text.slice(0, 20)}<truncated`)
          return
        case "form_error":
          res.writeHead(200, { "content-type": "application/x-www-form-urlencoded; charset=utf-8" })
          res.end(
            new URLSearchParams({ error: fault.error, error_description: "refused by the proxy" }).toString()
          )
          return
      }
    })().catch(() => {
      res.destroy()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    afterNextRefresh: (fault) => {
      faults.push(fault)
    },
    refreshes: () => refreshes,
    codeExchangeRefreshTokens: () => [...issued],
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      })
  }
}

/**
 * A dev-idp with a token proxy in front of it, both started before the tests of the file (or describe
 * block) that calls this and closed after them.
 */
export const useProxiedDevIdp = (options: DevIdpOptions = {}) => {
  const dev = withDevIdp(options)
  const state: { proxy: TokenProxy | undefined } = { proxy: undefined }
  beforeAll(async () => {
    await dev.start()
    state.proxy = await startTokenProxy(dev.idp.issuer)
  })
  afterAll(async () => {
    await state.proxy?.close()
    await dev.stop()
  })
  return {
    get idp(): DevIdp {
      return dev.idp
    },
    get proxy(): TokenProxy {
      if (state.proxy === undefined) throw new Error("the token proxy is not started")
      return state.proxy
    }
  }
}
