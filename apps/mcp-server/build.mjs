// @ts-check
/**
 * Builds dist/: the MCP server as one ES module bundle, so production runs `node dist/main.js` (the `bin`)
 * instead of compiling TypeScript through tsx at every start. The recipe, shared with the broker and the
 * CLI, and why it bundles everything (better-sqlite3 stays external, for a broker in process on SQLite),
 * is tooling/bundleApp.mjs.
 */
import { build } from "esbuild"
import { bundleApp } from "../../tooling/bundleApp.mjs"

await bundleApp(build, new URL(".", import.meta.url), {
  entryPoints: { main: "src/main.ts" },
  executable: "main"
})
