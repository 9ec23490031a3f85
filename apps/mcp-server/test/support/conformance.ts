import { spawn } from "node:child_process"
import { randomBytes } from "node:crypto"
import { access, mkdir, mkdtemp, readdir, readFile, rename, rm } from "node:fs/promises"
import { createServer, request as httpRequest, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { tmpdir } from "node:os"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"

/**
 * The official MCP conformance suite (`@modelcontextprotocol/conformance`) needs Node 22; the repo runs
 * on Node 20. Both come from the npm registry, pinned, into a cache folder of this package's
 * node_modules, installed once (into a temporary folder renamed into place, so concurrent runs never
 * see half an install).
 */
export const CONFORMANCE_VERSION = "0.1.16"
export const NODE_VERSION = "22.23.5"

const here = dirname(fileURLToPath(import.meta.url))
const cache = resolve(
  here,
  "../../node_modules/.cache/mcp-conformance",
  `${CONFORMANCE_VERSION}-node-${NODE_VERSION}`
)
const nodePackage = `node-${process.platform}-${process.arch}`

export interface Toolchain {
  readonly node: string
  readonly cli: string
}

const paths = (root: string): Toolchain => ({
  node: join(root, "node_modules", nodePackage, "bin", "node"),
  cli: join(root, "node_modules", "@modelcontextprotocol", "conformance", "dist", "index.js")
})

const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false
  )

const run = (command: string, args: ReadonlyArray<string>, cwd: string) =>
  new Promise<{ code: number | null; output: string }>((resolveRun, reject) => {
    const child = spawn(command, args, { cwd, stdio: ["ignore", "pipe", "pipe"] })
    let output = ""
    child.stdout.on("data", (chunk: Buffer) => {
      output += chunk.toString()
    })
    child.stderr.on("data", (chunk: Buffer) => {
      output += chunk.toString()
    })
    child.once("error", reject)
    child.once("close", (code) => resolveRun({ code, output }))
  })

export const ensureToolchain = async (): Promise<Toolchain> => {
  const ready = paths(cache)
  if ((await exists(ready.node)) && (await exists(ready.cli))) return ready
  await mkdir(dirname(cache), { recursive: true })
  const staging = `${cache}.tmp-${randomBytes(4).toString("hex")}`
  await mkdir(staging)
  try {
    const npm = process.platform === "win32" ? "npm.cmd" : "npm"
    const installed = await run(
      npm,
      [
        "install",
        "--no-audit",
        "--no-fund",
        "--no-package-lock",
        "--prefix",
        staging,
        `${nodePackage}@${NODE_VERSION}`,
        `@modelcontextprotocol/conformance@${CONFORMANCE_VERSION}`
      ],
      staging
    )
    if (installed.code !== 0)
      throw new Error(`npm install of the conformance suite failed:\n${installed.output}`)
    await rename(staging, cache).catch(async (error: NodeJS.ErrnoException) => {
      // another run installed it first: use theirs
      if (error.code !== "ENOTEMPTY" && error.code !== "EEXIST") throw error
    })
  } finally {
    await rm(staging, { recursive: true, force: true })
  }
  if (!(await exists(ready.node))) throw new Error(`no Node ${NODE_VERSION} binary at ${ready.node}`)
  return ready
}

/**
 * A reverse proxy that adds the bearer token (the suite sends none) and changes nothing else: Host and
 * Origin pass through as the suite sent them, so DNS-rebinding protection is tested for real.
 */
export const startAuthProxy = async (
  target: string,
  token: string
): Promise<{ readonly url: string; readonly close: () => Promise<void> }> => {
  const upstream = new URL(target)
  const server: Server = createServer((req, res) => {
    const forwarded = httpRequest(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, authorization: `Bearer ${token}` }
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers)
        answer.pipe(res)
      }
    )
    forwarded.on("error", () => {
      if (!res.headersSent) res.writeHead(502)
      res.end()
    })
    req.pipe(forwarded)
    res.on("close", () => forwarded.destroy())
  })
  await new Promise<void>((resolveListen) => server.listen(0, "127.0.0.1", resolveListen))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}${upstream.pathname}`,
    close: () =>
      new Promise<void>((resolveClose) => {
        server.closeAllConnections()
        server.close(() => resolveClose())
      })
  }
}

export interface ScenarioCheck {
  readonly id: string
  readonly status: string
  readonly errorMessage?: string
}

/** Runs one server scenario of the suite against `url`; answers its checks and the suite's output. */
export const runScenario = async (
  toolchain: Toolchain,
  url: string,
  scenario: string
): Promise<{
  readonly code: number | null
  readonly checks: ReadonlyArray<ScenarioCheck>
  readonly output: string
}> => {
  const out = await mkdtemp(join(tmpdir(), "tb-conformance-"))
  try {
    const result = await run(
      toolchain.node,
      [toolchain.cli, "server", "--url", url, "--scenario", scenario, "--output-dir", out],
      out
    )
    const checks: Array<ScenarioCheck> = []
    const walk = async (dir: string): Promise<void> => {
      for (const entry of await readdir(dir, { withFileTypes: true })) {
        const path = join(dir, entry.name)
        if (entry.isDirectory()) await walk(path)
        else if (entry.name === "checks.json") {
          checks.push(...(JSON.parse(await readFile(path, "utf8")) as Array<ScenarioCheck>))
        }
      }
    }
    await walk(out)
    return { code: result.code, checks, output: result.output }
  } finally {
    await rm(out, { recursive: true, force: true })
  }
}
