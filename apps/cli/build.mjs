// @ts-check
/**
 * Builds dist/: the CLI as ES modules bundled by esbuild, so `node dist/bin.js` runs as is (the workspace
 * packages are TypeScript sources that plain node cannot load) and starts fast.
 *
 * - The recipe (everything bundled but native modules, code splitting, a `require` for CommonJS) is the
 *   one the broker and the MCP server use too: tooling/bundleApp.mjs. The CLI minifies: bundling Effect
 *   matters for start-up (loading its ~300 ES modules one by one costs about half a second before the
 *   help can print; tree-shaken, the `--help` path is a few hundred KB), and each command's heavy imports
 *   (storage drivers, openid-client, the broker) sit in chunks loaded only when that command runs.
 * - dist/help.json records what the built CLI prints for `--help`, plain and in colour, so that the
 *   executable prints the bare help without loading the CLI (see src/bin.ts). It is recorded from the
 *   bundle just built (through main.js, which always runs the whole CLI), never written by hand.
 */
import { execFileSync } from "node:child_process"
import { writeFile } from "node:fs/promises"
import { build } from "esbuild"
import { bundleApp } from "../../tooling/bundleApp.mjs"

await bundleApp(build, new URL(".", import.meta.url), {
  entryPoints: { bin: "src/bin.ts", main: "src/main.ts" },
  executable: "bin",
  minify: true
})

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
