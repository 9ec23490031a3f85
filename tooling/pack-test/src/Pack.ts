import { execFile } from "node:child_process"
import { mkdir, readdir, readFile } from "node:fs/promises"
import { join, posix, relative, sep } from "node:path"
import { promisify } from "node:util"

const run = promisify(execFile)

export interface WorkspacePackage {
  readonly name: string
  readonly dir: string
  readonly manifest: Manifest
}

export interface Manifest {
  readonly name: string
  readonly version: string
  readonly private?: boolean
  readonly exports?: unknown
  readonly bin?: string | Record<string, string>
  readonly main?: string
  readonly types?: string
  readonly files?: ReadonlyArray<string>
  readonly dependencies?: Record<string, string>
  readonly devDependencies?: Record<string, string>
  readonly peerDependencies?: Record<string, string>
}

/** The workspace's packages that are published (no `"private": true`), from the folders pnpm-workspace.yaml names. */
export const publishablePackages = async (root: string): Promise<ReadonlyArray<WorkspacePackage>> => {
  const found: Array<WorkspacePackage> = []
  for (const parent of ["packages", "apps"]) {
    for (const entry of await readdir(join(root, parent), { withFileTypes: true })) {
      if (!entry.isDirectory()) continue
      const dir = join(root, parent, entry.name)
      const manifest = JSON.parse(await readFile(join(dir, "package.json"), "utf8")) as Manifest
      if (manifest.private !== true) found.push({ name: manifest.name, dir, manifest })
    }
  }
  return found.sort((a, b) => a.name.localeCompare(b.name))
}

/** `pnpm pack` of one package into `destination` (publishConfig applied, workspace: ranges replaced). */
export const pack = async (dir: string, destination: string): Promise<string> => {
  const { stdout } = await runIn(dir, "pnpm", ["pack", "--pack-destination", destination])
  const tarball = stdout
    .trim()
    .split("\n")
    .map((line) => line.trim())
    .reverse()
    .find((line) => line.endsWith(".tgz"))
  if (tarball === undefined) throw new Error(`pnpm pack in ${dir} named no tarball:\n${stdout}`)
  return tarball.startsWith("/") ? tarball : join(destination, tarball)
}

/** Unpacks a tarball into `into` and lists its files, relative to its `package/` folder. */
export const unpack = async (tarball: string, into: string): Promise<ReadonlySet<string>> => {
  await mkdir(into, { recursive: true })
  await run("tar", ["-xzf", tarball, "-C", into])
  const entries = await readdir(join(into, "package"), { recursive: true, withFileTypes: true })
  return new Set(
    entries
      .filter((entry) => entry.isFile())
      .map((entry) =>
        relative(join(into, "package"), join(entry.parentPath, entry.name)).split(sep).join("/")
      )
  )
}

const exportTargets = (value: unknown): Array<string> => {
  if (typeof value === "string") return [value]
  if (value === null || typeof value !== "object") return []
  return Object.values(value).flatMap(exportTargets)
}

const relativeImports = /(?:from\s*|import\s*\(\s*|import\s+)["'](\.{1,2}\/[^"']+)["']/g

/**
 * What a consumer would miss in this tarball: every file its package.json points at (exports, bin, main,
 * types), and every relative import of each packed .js / .d.ts module. Empty when nothing is missing.
 * `scratch` is an empty folder to unpack into.
 */
export const missingFiles = async (tarball: string, scratch: string): Promise<ReadonlyArray<string>> => {
  const files = await unpack(tarball, scratch)
  const root = join(scratch, "package")
  const manifest = JSON.parse(await readFile(join(root, "package.json"), "utf8")) as Manifest
  const missing = new Set<string>()
  const want = (path: string, from: string) => {
    if (!files.has(path)) missing.add(`${path} (named by ${from})`)
  }
  const fromManifest = [
    ...exportTargets(manifest.exports),
    ...(typeof manifest.bin === "string" ? [manifest.bin] : Object.values(manifest.bin ?? {})),
    ...(manifest.main === undefined ? [] : [manifest.main]),
    ...(manifest.types === undefined ? [] : [manifest.types])
  ]
  for (const target of fromManifest) want(posix.normalize(target).replace(/^\.\//, ""), "package.json")
  for (const file of files) {
    if (!/\.(m?js|d\.ts)$/.test(file)) continue
    const text = await readFile(join(root, file), "utf8")
    for (const [, spec] of text.matchAll(relativeImports)) {
      if (spec === undefined) continue
      const target = posix.normalize(posix.join(posix.dirname(file), spec))
      const candidates = file.endsWith(".d.ts") ? [target.replace(/\.js$/, ".d.ts"), target] : [target]
      if (!candidates.some((candidate) => files.has(candidate))) want(candidates[0] ?? target, file)
    }
  }
  return [...missing].sort()
}

/**
 * The package.json of a fresh consumer project: every tarball as a `file:` dependency, overrides that make
 * every @token-broker/* anywhere in the tree the tarball (never the registry), and the required peers at the
 * exact versions the workspace pins (optional peers, such as core's vitest, are left out).
 */
export const consumerManifest = (
  tarballs: ReadonlyMap<WorkspacePackage, string>,
  extra: Record<string, string>
): Record<string, unknown> => {
  const dependencies: Record<string, string> = {}
  const overrides: Record<string, string> = {}
  for (const [pkg, tarball] of tarballs) {
    dependencies[pkg.name] = `file:${tarball}`
    overrides[pkg.name] = `$${pkg.name}`
  }
  for (const pkg of tarballs.keys()) {
    const meta = (pkg.manifest as { peerDependenciesMeta?: Record<string, { optional?: boolean }> })
      .peerDependenciesMeta
    for (const peer of Object.keys(pkg.manifest.peerDependencies ?? {})) {
      if (peer.startsWith("@token-broker/") || meta?.[peer]?.optional === true) continue
      const pinned = pkg.manifest.devDependencies?.[peer]
      if (pinned === undefined)
        throw new Error(`${pkg.name} takes ${peer} as a peer but pins no version of it`)
      dependencies[peer] = pinned
    }
  }
  return {
    name: "token-broker-pack-consumer",
    private: true,
    type: "module",
    dependencies: { ...dependencies, ...extra },
    overrides
  }
}

/** Runs a command; its output goes into the error when it fails, so a failure says what went wrong. */
export const runIn = async (cwd: string, command: string, args: ReadonlyArray<string>) => {
  try {
    return await run(command, [...args], { cwd, maxBuffer: 64 * 1024 * 1024 })
  } catch (error) {
    const { stdout, stderr } = error as { stdout?: string; stderr?: string }
    throw new Error(`${command} ${args.join(" ")} failed in ${cwd}:\n${stdout ?? ""}\n${stderr ?? ""}`, {
      cause: error
    })
  }
}
