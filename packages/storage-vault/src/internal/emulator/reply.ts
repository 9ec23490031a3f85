import { randomUUID } from "node:crypto"
import type { IncomingMessage } from "node:http"
import type { Capability } from "../../testing/VaultEmulator.js"

export class Reply {
  constructor(
    readonly status: number,
    readonly body: unknown
  ) {}
}

/** A request to a secrets engine, as the emulator routes it to the engine mounted at its path. */
export interface EngineRequest {
  readonly mountName: string
  /** The path below the mount. */
  readonly rest: string
  readonly method: string
  /** A LIST (GET with `?list=true`). */
  readonly list: boolean
  readonly body: Record<string, unknown>
  /** Whether the token may use `capability` at the request's path: `undefined`, or the refusal to answer. */
  readonly check: (capability: Capability) => Reply | undefined
}

export const errors = (status: number, ...messages: Array<string>) => new Reply(status, { errors: messages })
export const noContent = () => new Reply(204, undefined)

/** RFC 3339 with a nanosecond fraction, as Vault writes times. */
export const vaultTime = (ms: number): string => {
  const iso = new Date(ms).toISOString()
  return `${iso.slice(0, 19)}.${iso.slice(20, 23)}000000Z`
}

export const globMatches = (pattern: string, path: string): boolean => {
  const prefix = pattern.endsWith("*")
  const body = prefix ? pattern.slice(0, -1) : pattern
  const patternParts = body.split("/")
  const pathParts = path.split("/")
  if (!prefix && patternParts.length !== pathParts.length) return false
  if (prefix && pathParts.length < patternParts.length) return false
  return patternParts.every((part, i) => {
    const actual = pathParts[i] ?? ""
    if (part === "+") return prefix && i === patternParts.length - 1 ? true : actual !== ""
    if (prefix && i === patternParts.length - 1) return actual.startsWith(part)
    return actual === part
  })
}

export const envelope = (data: unknown, extra: Record<string, unknown> = {}) => ({
  request_id: randomUUID(),
  lease_id: "",
  renewable: false,
  lease_duration: 0,
  data,
  wrap_info: null,
  warnings: null,
  auth: null,
  ...extra
})

export const readBody = (req: IncomingMessage): Promise<string> =>
  new Promise((resolve, reject) => {
    const chunks: Array<Buffer> = []
    req.on("data", (chunk: Buffer) => chunks.push(chunk))
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")))
    req.on("error", reject)
  })

export const b64 = (text: unknown): Buffer | undefined => {
  if (typeof text !== "string") return undefined
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) return undefined
  return Buffer.from(text, "base64")
}

/** `sys/health`: a sealed Vault answers 503. */
export const sysHealth = (sealed: boolean, now: number): Reply =>
  new Reply(sealed ? 503 : 200, {
    initialized: true,
    sealed,
    standby: false,
    performance_standby: false,
    replication_performance_mode: "disabled",
    replication_dr_mode: "disabled",
    server_time_utc: Math.floor(now / 1000),
    version: "1.17.0+emulator",
    cluster_name: "vault-emulator",
    cluster_id: "00000000-0000-0000-0000-000000000000"
  })

export const sealStatus = (sealed: boolean): Reply =>
  new Reply(200, {
    type: "shamir",
    initialized: true,
    sealed,
    t: 1,
    n: 1,
    progress: 0,
    version: "1.17.0+emulator"
  })
