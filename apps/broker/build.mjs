// @ts-check
/**
 * Builds dist/: the broker as one ES module bundle, so production runs `node dist/main.js` (the `bin`)
 * instead of compiling TypeScript through tsx at every start. The recipe, shared with the MCP server and
 * the CLI, and why it bundles everything, is tooling/bundleApp.mjs.
 */
import { build } from "esbuild"
import { bundleApp } from "../../tooling/bundleApp.mjs"

await bundleApp(build, new URL(".", import.meta.url), {
  entryPoints: { main: "src/main.ts" },
  executable: "main",
  // both read their own files (package.json, the UI's static assets) beside their code
  external: ["@fastify/swagger", "@fastify/swagger-ui"]
})
