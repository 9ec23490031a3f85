// @ts-check
/**
 * Builds dist/: the CLI as ES modules bundled by esbuild, so `node dist/bin.js` runs as is (the workspace
 * packages are TypeScript sources that plain node cannot load) and starts fast.
 *
 * - Everything is bundled except native modules (better-sqlite3, and the optional pg-native that pg
 *   never needs here), which stay imports resolved from node_modules: better-sqlite3 is this package's
 *   one runtime dependency. Bundling Effect matters for start-up: loading its ~300 ES modules one by one
 *   costs about half a second before the help can print; tree-shaken, the `--help` path is a few hundred KB.
 * - Code splitting keeps each command's heavy imports (storage drivers, openid-client, the broker) in
 *   chunks loaded only when that command runs (`import()` in the command's handler).
 * - CommonJS dependencies (pg, ...) get a `require` from `createRequire` for their own `require` calls.
 * - dist/help.json records what the built CLI prints for `--help`, plain and in colour, so that the
 *   executable prints the bare help without loading the CLI (see src/bin.ts). It is recorded from the
 *   bundle just built (through main.js, which always runs the whole CLI), never written by hand.
 */
import { execFileSync } from "node:child_process"
import { chmod, rm, writeFile } from "node:fs/promises"
import { build } from "esbuild"

await rm(new URL("./dist", import.meta.url), { recursive: true, force: true })
await build({
  entryPoints: { bin: "src/bin.ts", main: "src/main.ts" },
  outdir: "dist",
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node20",
  sourcemap: true,
  minify: true,
  external: ["better-sqlite3", "pg-native", "msgpackr-extract"],
  chunkNames: "chunks/[name]-[hash]",
  banner: {
    js: 'import { createRequire as __tbCreateRequire } from "node:module"; const require = __tbCreateRequire(import.meta.url);'
  },
  logLevel: "warning"
})
await chmod(new URL("./dist/bin.js", import.meta.url), 0o755)

const main = new URL("./dist/main.js", import.meta.url).pathname
const helpIn = (/** @type {Record<string, string>} */ colorEnv) => {
  // biome-ignore lint/style/noProcessEnv: the build is an entry point; the recording runs without the caller's colour settings
  const { NO_COLOR: _noColor, FORCE_COLOR: _forceColor, ...rest } = process.env
  return execFileSync(process.execPath, [main, "--help"], { env: { ...rest, ...colorEnv }, encoding: "utf8" })
}
await writeFile(
  new URL("./dist/help.json", import.meta.url),
  `${JSON.stringify({ plain: helpIn({ NO_COLOR: "1" }), color: helpIn({ FORCE_COLOR: "1" }) })}\n`
)
