// @ts-check
/**
 * The one esbuild recipe the three apps (broker, MCP server, CLI) build their dist/ with; each build.mjs
 * says only what differs (entry points, the executable, minifying) and passes its own esbuild `build`, so
 * esbuild stays a dependency of each app and this file resolves nothing itself.
 *
 * - Every dependency is bundled: inside the workspace the @token-broker/* packages export their TypeScript
 *   sources, which plain node does not load, and tsc alone cannot rewrite that.
 * - Native modules stay imports resolved from node_modules: better-sqlite3 (a dependency of each app), and
 *   the optional pg-native and msgpackr-extract that the drivers never need here.
 * - Code splitting keeps heavy imports loaded on demand (the configured storage adapter, a CLI command's
 *   drivers) in chunks read only when that code runs.
 * - CommonJS dependencies (pg, fastify's, ...) get a `require` from `createRequire` for their own calls.
 */
import { chmod, rm } from "node:fs/promises"

/** A `require` for the CommonJS dependencies inside an ES module bundle. */
const REQUIRE_BANNER = {
  js: 'import { createRequire as __tbCreateRequire } from "node:module"; const require = __tbCreateRequire(import.meta.url);'
}

/**
 * @param {(options: import("esbuild").BuildOptions) => Promise<unknown>} build esbuild's `build`, from the app
 * @param {URL} appDir the app's directory (`new URL(".", import.meta.url)` in its build.mjs), ending in "/"
 * @param {{ entryPoints: Record<string, string>, executable: string, minify?: boolean, external?: ReadonlyArray<string> }} app
 *   entry points by output name, the output name made executable (the package's bin), whether to minify,
 *   and the app's own dependencies that must stay imports (those that read files beside their own code
 *   through `__dirname`, which an ES module bundle does not have)
 */
export const bundleApp = async (
  build,
  appDir,
  { entryPoints, executable, minify = false, external = [] }
) => {
  const dist = new URL("dist/", appDir)
  await rm(dist, { recursive: true, force: true })
  await build({
    absWorkingDir: appDir.pathname,
    entryPoints,
    outdir: "dist",
    bundle: true,
    splitting: true,
    format: "esm",
    platform: "node",
    target: "node20",
    sourcemap: true,
    minify,
    external: ["better-sqlite3", "pg-native", "msgpackr-extract", ...external],
    chunkNames: "chunks/[name]-[hash]",
    banner: REQUIRE_BANNER,
    logLevel: "warning"
  })
  await chmod(new URL(`${executable}.js`, dist), 0o755)
}

/**
 * One script bundled into one file the way the apps are (every dependency inside, a `require` for the
 * CommonJS ones), for plain node: the benchmarks' baseline servers, so that they run as the app they
 * are compared with does, without tsx's loader.
 *
 * @param {(options: import("esbuild").BuildOptions) => Promise<unknown>} build esbuild's `build`, from the caller
 * @param {string} entry the script's path
 * @param {string} outfile where the bundle is written (an `.mjs` path)
 */
export const bundleScript = async (build, entry, outfile) => {
  await build({
    entryPoints: [entry],
    outfile,
    bundle: true,
    format: "esm",
    platform: "node",
    target: "node20",
    banner: REQUIRE_BANNER,
    logLevel: "error"
  })
}
