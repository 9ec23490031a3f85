import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { chownSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import Mysql from "mysql2/promise"

/**
 * A throwaway MariaDB server in a temp folder that a test may stop and start for real without touching
 * the machine's shared server. It listens on a Unix socket in its own folder and on no TCP port
 * (`--skip-networking`): mariadbd cannot bind port 0 and report the port, and a port picked free then
 * bound later is taken by another process now and then on a busy machine. When we are root, the server
 * drops to the `mysql` OS user (`--user=mysql`), which owns the folder.
 */
export interface PrivateServer {
  /** `mysql://root@localhost/<database>?socketPath=<folder>/sock`. */
  readonly url: (database: string) => string
  readonly stop: () => Promise<void>
  readonly start: () => Promise<void>
  readonly destroy: () => Promise<void>
}

const asRoot = process.getuid?.() === 0

export const startPrivateServer = async (): Promise<PrivateServer> => {
  const dir = mkdtempSync(join(tmpdir(), "tb-mariadb-"))
  if (asRoot) {
    const uid = Number(execFileSync("id", ["-u", "mysql"]).toString().trim())
    const gid = Number(execFileSync("id", ["-g", "mysql"]).toString().trim())
    chownSync(dir, uid, gid)
  }
  const user = asRoot ? ["--user=mysql"] : []
  const data = join(dir, "data")
  const socket = join(dir, "sock")
  execFileSync(
    "mariadb-install-db",
    [
      "--no-defaults",
      `--datadir=${data}`,
      "--auth-root-authentication-method=normal",
      "--skip-test-db",
      ...user
    ],
    { stdio: "pipe" }
  )
  let server: ChildProcess | undefined
  const start = async () => {
    const child = spawn(
      "/usr/sbin/mariadbd",
      [
        "--no-defaults",
        `--datadir=${data}`,
        `--socket=${socket}`,
        "--skip-networking",
        `--pid-file=${join(dir, "pid")}`,
        `--log-error=${join(dir, "error.log")}`,
        "--innodb-buffer-pool-size=16M",
        ...user
      ],
      { stdio: "ignore" }
    )
    server = child
    const exited = new Promise<never>((_, reject) =>
      child.once("exit", (code) =>
        reject(new Error(`mariadbd exited (${code}); see ${join(dir, "error.log")}`))
      )
    )
    exited.catch(() => undefined)
    // ready when it accepts a connection on its socket (the socket file appears before that)
    for (const started = Date.now(); Date.now() - started < 120_000; ) {
      const connected = await Promise.race([
        Mysql.createConnection({ socketPath: socket, user: "root" }).then(
          (conn) => conn.end().then(() => true),
          () => false
        ),
        exited
      ])
      if (connected) return
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    throw new Error(`mariadbd did not accept connections on ${socket} within 120 s`)
  }
  const stop = async () => {
    const child = server
    if (child === undefined || child.exitCode !== null) return
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
    child.kill("SIGTERM")
    await exited
    server = undefined
  }
  await start()
  return {
    url: (database) => `mysql://root@localhost/${database}?socketPath=${encodeURIComponent(socket)}`,
    start,
    stop,
    destroy: async () => {
      await stop()
      rmSync(dir, { recursive: true, force: true })
    }
  }
}
