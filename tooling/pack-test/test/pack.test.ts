import { copyFile, mkdir, mkdtemp, readFile, realpath, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { dirname, join, relative, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  consumerManifest,
  type Manifest,
  missingFiles,
  pack,
  publishablePackages,
  runIn,
  type WorkspacePackage
} from "../src/Pack.js"

const here = dirname(fileURLToPath(import.meta.url))
const workspace = resolve(here, "../../..")
const own = JSON.parse(await readFile(resolve(here, "../package.json"), "utf8")) as Manifest

let temp: string
let project: string
let packages: ReadonlyArray<WorkspacePackage>
const tarballs = new Map<WorkspacePackage, string>()

// The project lives in the OS temp folder, outside the workspace: nothing there can resolve a workspace link.
beforeAll(async () => {
  temp = await mkdtemp(join(tmpdir(), "tb-pack-"))
  project = join(temp, "consumer")
  packages = await publishablePackages(workspace)
  await runIn(workspace, "pnpm", [
    "--recursive",
    "--workspace-concurrency=2",
    ...packages.flatMap((pkg) => ["--filter", pkg.name]),
    "run",
    "build"
  ])
  await mkdir(join(temp, "tarballs"))
  for (const pkg of packages) tarballs.set(pkg, await pack(pkg.dir, join(temp, "tarballs")))

  await mkdir(project)
  const manifest = consumerManifest(tarballs, {
    typescript: own.devDependencies?.typescript ?? "",
    "@types/node": own.devDependencies?.["@types/node"] ?? ""
  })
  await writeFile(join(project, "package.json"), `${JSON.stringify(manifest, null, 2)}\n`)
  await copyFile(resolve(here, "../consumer/consumer.ts"), join(project, "consumer.ts"))
  await copyFile(resolve(here, "../consumer/tsconfig.json"), join(project, "tsconfig.json"))
  await runIn(project, "npm", ["install", "--no-audit", "--no-fund", "--loglevel=error"])
})

afterAll(async () => {
  if (temp !== undefined) await rm(temp, { recursive: true, force: true })
})

describe("the published packages, as a team installs them", () => {
  it("packs every publishable package, each with every file its package.json and its modules name", async () => {
    expect(packages.map((pkg) => pkg.name)).toEqual(
      expect.arrayContaining(["@token-broker/core", "@token-broker/config", "@token-broker/cli"])
    )
    for (const [pkg, tarball] of tarballs) {
      expect(await missingFiles(tarball, await mkdtemp(join(temp, "unpacked-"))), pkg.name).toEqual([])
    }
  })

  it("the fresh project resolves every @token-broker/* from the tarballs, never the workspace or a registry", async () => {
    const lock = JSON.parse(await readFile(join(project, "package-lock.json"), "utf8")) as {
      packages: Record<string, { resolved?: string; link?: boolean }>
    }
    const ours = Object.entries(lock.packages).filter(([path]) =>
      /(^|\/)node_modules\/@token-broker\//.test(path)
    )
    expect(ours.length).toBeGreaterThanOrEqual(packages.length)
    for (const [path, entry] of ours) {
      expect(entry.link, path).not.toBe(true)
      expect(entry.resolved, path).toMatch(/^file:/)
      // npm records a file: dependency relative to the project
      const tarball = resolve(project, (entry.resolved ?? "").replace(/^file:/, ""))
      expect(relative(join(temp, "tarballs"), tarball), path).not.toMatch(/^\.\./)
    }
    for (const pkg of packages) {
      const installed = await realpath(join(project, "node_modules", pkg.name))
      expect(relative(project, installed), pkg.name).not.toMatch(/^\.\./)
    }
  })

  it("a consumer's TypeScript type-checks against the tarballs with skipLibCheck: false", async () => {
    await runIn(project, process.execPath, [join(project, "node_modules/typescript/bin/tsc"), "-p", "."])
  })

  it("gets a background token on SQLite (config imports the installed adapter) from a real dev-idp", async () => {
    const { stdout } = await runIn(project, process.execPath, [join(project, "dist/consumer.js"), project])
    expect(JSON.parse(stdout.trim().split("\n").at(-1) ?? "{}")).toEqual({
      surfaces: 8,
      durable: true,
      sqliteFile: true,
      notesStatus: 200
    })
  })

  it("the CLI's bin runs from its tarball", async () => {
    const { stdout } = await runIn(project, join(project, "node_modules/.bin/token-broker"), ["--help"])
    expect(stdout).toContain("hash-secret")
  })
})

describe("the tarball check fails loudly (control)", () => {
  it("a package whose files omit dist is reported with every file it misses", async () => {
    const storageSql = packages.find((pkg) => pkg.name === "@token-broker/storage-sql")
    if (storageSql === undefined) throw new Error("no @token-broker/storage-sql in the workspace")
    const copy = join(temp, "storage-sql-without-dist")
    await runIn(temp, "cp", ["-r", storageSql.dir, copy])
    const manifest = JSON.parse(await readFile(join(copy, "package.json"), "utf8")) as Record<string, unknown>
    // without its workspace: dependencies the copy packs outside the workspace; only `files` matters here
    const { dependencies: _d, devDependencies: _dd, peerDependencies: _p, ...rest } = manifest
    await writeFile(join(copy, "package.json"), JSON.stringify({ ...rest, files: ["src", "README.md"] }))
    await mkdir(join(temp, "control"))
    const missing = await missingFiles(
      await pack(copy, join(temp, "control")),
      join(temp, "control-unpacked")
    )
    expect(missing).toEqual(
      expect.arrayContaining([
        "dist/index.js (named by package.json)",
        "dist/index.d.ts (named by package.json)"
      ])
    )
  })
})
