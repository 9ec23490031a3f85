import { spawn } from "node:child_process"
import { createInterface } from "node:readline"
import { fileURLToPath } from "node:url"
import type { DevIdpClient } from "./Clients.js"
import type { DevIdpUser } from "./Config.js"

/** What `GET /__dev/info` answers: the running dev-idp's addresses, clients and demo users. */
export interface DevIdpInfo {
  readonly issuer: string
  readonly discoveryUrl: string
  readonly notesAudience: string
  readonly notesApiUrl: string
  readonly opaqueAudience: string
  readonly mcpAudience: string | null
  readonly clients: ReadonlyArray<DevIdpClient>
  readonly users: ReadonlyArray<DevIdpUser>
}

export interface DevIdpProcess {
  readonly info: DevIdpInfo
  readonly pid: number
  /** The client with this id; throws when the running dev-idp has none. */
  readonly client: (clientId: string) => DevIdpClient
  /** SIGTERM, then waits for the process to exit. */
  readonly close: () => Promise<void>
}

export interface SpawnDevIdpOptions {
  /** Extra arguments for dev-idp's command line (`--config`, `--host`); the port is always 0. */
  readonly args?: ReadonlyArray<string>
  /** The child's environment; this process's by default. */
  readonly env?: NodeJS.ProcessEnv
}

// From source (the workspace) through tsx; from a built package, dist's own bin.js.
const fromSource = import.meta.url.endsWith(".ts")

/** Drive a login at a dev-idp of another process as well as this one's: plain HTTP with a cookie jar. */
export { driveAuthorization, login } from "./LoginDriver.js"

const bin = fileURLToPath(new URL(fromSource ? "./bin.ts" : "./bin.js", import.meta.url))

/**
 * Runs dev-idp in a process of its own, bound to port 0 there, and answers once it serves. For
 * benchmarks and tests whose own process must not carry the provider's work (oidc-provider keeps an
 * AsyncLocalStorage, whose hooks then cost every promise of the process that hosts it).
 */
export const spawnDevIdp = async (options: SpawnDevIdpOptions = {}): Promise<DevIdpProcess> => {
  const child = spawn(
    process.execPath,
    [...(fromSource ? ["--import", "tsx"] : []), bin, "--port", "0", ...(options.args ?? [])],
    {
      cwd: fileURLToPath(new URL("..", import.meta.url)),
      // without env, the child inherits this process's environment
      ...(options.env === undefined ? {} : { env: options.env }),
      stdio: ["ignore", "pipe", "pipe"]
    }
  )
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
  let errors = ""
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
    errors = `${errors}${chunk}`.slice(-2000)
  })
  const lines = createInterface({ input: child.stdout })
  const issuer = await new Promise<string>((resolve, reject) => {
    lines.on("line", (line) => {
      const match = /^\s+issuer\s+(\S+)$/.exec(line)
      if (match?.[1] !== undefined) resolve(match[1])
    })
    void exited.then((code) =>
      reject(new Error(`dev-idp exited (code ${code}) before serving: ${errors.trim()}`))
    )
  })
  lines.removeAllListeners("line")
  child.stdout.resume()
  const close = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM")
    await exited
  }
  try {
    const response = await fetch(`${issuer}/__dev/info`)
    if (!response.ok) throw new Error(`dev-idp's /__dev/info answered ${response.status}`)
    const info = (await response.json()) as DevIdpInfo
    return {
      info,
      pid: child.pid ?? -1,
      client: (clientId) => {
        const client = info.clients.find((c) => c.clientId === clientId)
        if (client === undefined) throw new Error(`dev-idp has no client "${clientId}"`)
        return client
      },
      close
    }
  } catch (error) {
    await close()
    throw error
  }
}
