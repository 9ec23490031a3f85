import { execFileSync } from "node:child_process"
import { writeFile } from "node:fs/promises"
import { fileURLToPath } from "node:url"
import { jsonSchemaText } from "../src/JsonSchema.js"

const target = fileURLToPath(new URL("../schema/token-broker.schema.json", import.meta.url))
await writeFile(target, jsonSchemaText())
// the repository's formatter has the last word on layout; the test compares content
execFileSync("pnpm", ["exec", "biome", "format", "--write", target], { stdio: "ignore" })
