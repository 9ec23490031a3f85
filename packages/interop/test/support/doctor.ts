import { spawn } from "node:child_process"
import { writeFile } from "node:fs/promises"
import { createRequire } from "node:module"
import { dirname, join } from "node:path"
import type { ConfigFileInput } from "@token-broker/config"

const require = createRequire(import.meta.url)
/** The CLI from its sources (tsx compiles them), as `pnpm --filter @token-broker/cli` would run it. */
const CLI_BIN = join(dirname(require.resolve("@token-broker/cli/package.json")), "src", "bin.ts")
const TSX = require.resolve("tsx/cli")

export interface DoctorResult {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** Writes `config` to `path` (owner-only) and runs `token-broker doctor --config path` with `env` only. */
export const runDoctor = async (
  path: string,
  config: ConfigFileInput,
  env: Readonly<Record<string, string>>
): Promise<DoctorResult> => {
  await writeFile(path, JSON.stringify(config, null, 2), { mode: 0o600 })
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [TSX, CLI_BIN, "doctor", "--config", path], {
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/tmp", ...env },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString()
    })
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString()
    })
    child.on("error", reject)
    child.on("close", (code) => resolve({ code, stdout, stderr }))
  })
}
