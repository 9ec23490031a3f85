import { execFileSync } from "node:child_process"
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

/**
 * A throwaway PostgreSQL cluster in a temp folder that a test may stop and start for real without
 * touching the machine's shared server. It listens on a Unix socket in its own folder and on no TCP
 * port: PostgreSQL cannot bind port 0 and report the port, and a port picked free then bound later is
 * taken by another process now and then on a busy machine. Run as the `postgres` OS user when we are root.
 */
export interface PrivateCluster {
  /** `postgres://postgres@/postgres?host=<folder>`: the socket folder as the host. */
  readonly url: string
  readonly stop: () => void
  readonly start: () => void
  readonly destroy: () => void
}

const binDir = (): string => {
  const root = "/usr/lib/postgresql"
  const versions = existsSync(root) ? readdirSync(root).sort((a, b) => Number(b) - Number(a)) : []
  const found = versions.map((v) => join(root, v, "bin")).find((dir) => existsSync(join(dir, "initdb")))
  if (found === undefined) throw new Error(`no PostgreSQL server binaries (initdb) under ${root}`)
  return found
}

export const startPrivateCluster = async (): Promise<PrivateCluster> => {
  const bin = binDir()
  const dir = mkdtempSync(join(tmpdir(), "tb-pg-"))
  const data = join(dir, "data")
  const asRoot = process.getuid?.() === 0
  if (asRoot) {
    const uid = Number(execFileSync("id", ["-u", "postgres"]).toString().trim())
    const gid = Number(execFileSync("id", ["-g", "postgres"]).toString().trim())
    chownSync(dir, uid, gid)
  }
  const run = (tool: string, args: Array<string>) =>
    asRoot
      ? execFileSync("runuser", ["-u", "postgres", "--", join(bin, tool), ...args], { stdio: "pipe" })
      : execFileSync(join(bin, tool), args, { stdio: "pipe" })
  run("initdb", ["-D", data, "-A", "trust", "-U", "postgres", "--no-sync"])
  const start = () =>
    run("pg_ctl", [
      "-D",
      data,
      "-l",
      join(dir, "log"),
      "-w",
      "-o",
      `-k ${dir} -c listen_addresses='' -c fsync=off`,
      "start"
    ])
  const stop = () => run("pg_ctl", ["-D", data, "-m", "fast", "-w", "stop"])
  start()
  return {
    url: `postgres://postgres@/postgres?host=${encodeURIComponent(dir)}`,
    start,
    stop,
    destroy: () => {
      try {
        stop()
      } catch {
        // already stopped
      }
      rmSync(dir, { recursive: true, force: true })
    }
  }
}
