// @ts-check
/**
 * Builds dist/: the broker as one ES module bundle, so production runs `node dist/main.js` (the `bin`)
 * instead of compiling TypeScript through tsx at every start. tsc alone cannot do it: inside the workspace
 * the @token-broker/* packages export their TypeScript sources, which plain node does not load; bundling
 * them (and every other dependency) is what the CLI does too (apps/cli/build.mjs).
 *
 * - Native modules stay imports resolved from node_modules: better-sqlite3 (a dependency of this app), and
 *   the optional pg-native and msgpackr-extract that the drivers never need here.
 * - CommonJS dependencies (pg, fastify's, ...) get a `require` from `createRequire` for their own calls.
 * - Storage adapters are chunks: config imports the configured one on demand, and so does the bundle.
 */
import { chmod, rm } from "node:fs/promises"
import { build } from "esbuild"

await rm(new URL("./dist", import.meta.url), { recursive: true, force: true })
await build({
  entryPoints: { main: "src/main.ts" },
  outdir: "dist",
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node20",
  sourcemap: true,
  external: ["better-sqlite3", "pg-native", "msgpackr-extract"],
  chunkNames: "chunks/[name]-[hash]",
  banner: {
    js: 'import { createRequire as __tbCreateRequire } from "node:module"; const require = __tbCreateRequire(import.meta.url);'
  },
  logLevel: "warning"
})
await chmod(new URL("./dist/main.js", import.meta.url), 0o755)
