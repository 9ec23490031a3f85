/**
 * DNS-rebinding protection for the MCP endpoint (the MCP transport spec: servers MUST validate Origin):
 * the Host header must name this server, and an Origin header, where a browser sent one, must be an
 * allowed origin. The SDK's own check (`allowedHosts` of its transport) runs inside `handleRequest`,
 * after our bearer check and body parsing, so a rebound request would still cost a token verification
 * and a parsed body and answer 401; this one runs first and answers 403.
 *
 * Where publicUrl is a loopback address, loopback names (localhost, 127.0.0.1, [::1]) at any port are
 * accepted too: a rebinding attacker's page can only send its own host name, never a loopback one.
 */
export interface RequestOriginCheck {
  /** Why the request is refused, or undefined when it may go on. */
  readonly refusal: (host: string | undefined, origin: string | undefined) => "host" | "origin" | undefined
}

const LOOPBACK = new Set(["localhost", "127.0.0.1", "[::1]"])
const MAX_HOSTS_REMEMBERED = 256

export const makeRequestOriginCheck = (options: {
  readonly publicUrl: string
  readonly allowedHosts: ReadonlyArray<string>
  readonly allowedOrigins: ReadonlyArray<string>
}): RequestOriginCheck => {
  const own = new URL(options.publicUrl)
  const loopback = LOOPBACK.has(own.hostname)
  const hosts = new Set(options.allowedHosts.map((h) => h.toLowerCase()))
  const origins = new Set(options.allowedOrigins)

  /** host[:port] as a URL of this server's scheme would spell it (the default port left out), or undefined. */
  const normalHost = (value: string): URL | undefined => {
    if (!/^[A-Za-z0-9.-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$/.test(value)) return undefined
    try {
      return new URL(`${own.protocol}//${value}`)
    } catch {
      return undefined
    }
  }

  const hostAllowed = (header: string | undefined): boolean => {
    if (header === undefined) return false
    const url = normalHost(header)
    if (url === undefined) return false
    return hosts.has(url.host) || (loopback && LOOPBACK.has(url.hostname))
  }

  // Host headers seen, with the verdict: a request's check is a Map read, not a URL parse. Bounded (any
  // client may send any Host): cleared when full.
  const hostVerdicts = new Map<string, boolean>()
  const knownHostAllowed = (header: string | undefined): boolean => {
    if (header === undefined) return false
    let verdict = hostVerdicts.get(header)
    if (verdict === undefined) {
      verdict = hostAllowed(header)
      if (hostVerdicts.size >= MAX_HOSTS_REMEMBERED) hostVerdicts.clear()
      hostVerdicts.set(header, verdict)
    }
    return verdict
  }

  const originAllowed = (header: string): boolean => {
    let url: URL
    try {
      url = new URL(header)
    } catch {
      return false // "null" (sandboxed frames, file: pages) and garbage
    }
    if (url.origin === "null" || url.origin !== header.replace(/\/$/, "")) return false
    if (origins.has(url.origin)) return true
    return loopback && (url.protocol === "http:" || url.protocol === "https:") && LOOPBACK.has(url.hostname)
  }

  return {
    refusal: (host, origin) =>
      !knownHostAllowed(host) ? "host" : origin !== undefined && !originAllowed(origin) ? "origin" : undefined
  }
}
