import { type ChildProcess, spawn } from "node:child_process"
import { generateKeyPairSync, randomBytes } from "node:crypto"
import { once } from "node:events"
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises"
import { createRequire } from "node:module"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"

/**
 * Glewlwyd 2.7.5 as Debian packages it, run as a process of its own on 127.0.0.1 from a generated
 * config: a private sqlite database initialised from the package's own SQL script, a copy of its web
 * app (the login and consent pages), its OIDC plugin with PKCE, one-use refresh tokens and RFC 7009
 * revocation, then one confidential client and one user, all created through its admin REST API.
 */

export const DEFAULT_GLEWLWYD = "/usr/bin/glewlwyd"
const SQL_INIT = "/usr/share/dbconfig-common/data/glewlwyd/install/sqlite3"
const WEBAPP = "/usr/share/glewlwyd/webapp"
/** The packaged administrator; its password is replaced before anything else is configured. */
const PACKAGED_ADMIN = { username: "admin", password: "password" }

export interface GlewlwydOptions {
  /** The glewlwyd binary; default /usr/bin/glewlwyd (Debian's package). */
  readonly binary?: string | undefined
  /** The client's redirect URI (the broker's callback). */
  readonly redirectUri: string
  /** Default "token-broker-interop": a `-` in it is what form-encoded Basic credentials get wrong. */
  readonly clientId?: string | undefined
  /** Lifetime of access tokens; default 90 s. */
  readonly accessTokenSeconds?: number | undefined
}

export interface Glewlwyd {
  /** e.g. http://127.0.0.1:40123/api/oidc (discovery below it) */
  readonly issuer: string
  readonly baseUrl: string
  readonly client: { readonly id: string; readonly secret: string }
  readonly user: { readonly username: string; readonly password: string }
  /** Access tokens Glewlwyd has issued (one per code exchange or refresh), read from its database. */
  readonly accessTokensIssued: () => number
  /** Glewlwyd's own log file (never holds a token: INFO level). */
  readonly log: () => Promise<string>
  readonly close: () => Promise<void>
}

interface Database {
  exec(sql: string): void
  prepare(sql: string): { get(): Record<string, unknown> }
  close(): void
}

const openDatabase = (file: string, options: { readonly?: boolean } = {}): Database => {
  // better-sqlite3 ships no types; this suite needs a few of its methods
  const BetterSqlite = createRequire(import.meta.url)("better-sqlite3") as new (
    file: string,
    options: { readonly?: boolean; timeout?: number }
  ) => Database
  return new BetterSqlite(file, { ...options, timeout: 10_000 })
}

/** A port free right now; Glewlwyd cannot bind port 0, so a start that loses the race is retried. */
const freePort = async (): Promise<number> => {
  const server = createServer()
  server.listen(0, "127.0.0.1")
  await once(server, "listening")
  const address = server.address()
  const port = typeof address === "object" && address !== null ? address.port : 0
  server.close()
  await once(server, "close")
  return port
}

const configText = (dir: string, port: number) => `
port=${port}
bind_address="127.0.0.1"
external_url="http://127.0.0.1:${port}"
login_url="login.html"
api_prefix="api"
static_files_path="${join(dir, "webapp")}/"
allow_origin="*"
log_mode="file"
log_level="INFO"
log_file="${join(dir, "glewlwyd.log")}"
cookie_secure=0
session_expiration=3600
session_key="GLEWLWYD2_SESSION_ID"
admin_session_authentication="cookie"
profile_session_authentication="cookie"
allow_multiple_user_per_session=true
login_api_enabled=true
admin_scope="g_admin"
profile_scope="g_profile"
user_module_path="/usr/lib/glewlwyd/user"
client_module_path="/usr/lib/glewlwyd/client"
user_auth_scheme_module_path="/usr/lib/glewlwyd/scheme"
plugin_module_path="/usr/lib/glewlwyd/plugin"
# Glewlwyd does not start without these keys, even with TLS off
use_secure_connection=false
secure_connection_key_file="${join(dir, "unused.key")}"
secure_connection_pem_file="${join(dir, "unused.pem")}"
secure_connection_ca_file="${join(dir, "unused.crt")}"
hash_algorithm="SHA512"
database = { type = "sqlite3" path = "${join(dir, "glewlwyd.db")}" };
static_files_mime_types = (
  { extension = ".html" mime_type = "text/html" },
  { extension = ".css" mime_type = "text/css" },
  { extension = ".js" mime_type = "application/javascript" },
  { extension = ".json" mime_type = "application/json" },
  { extension = ".png" mime_type = "image/png" },
  { extension = ".svg" mime_type = "image/svg+xml" },
  { extension = ".ico" mime_type = "image/x-icon" },
  { extension = ".ttf" mime_type = "font/ttf" },
  { extension = ".woff" mime_type = "font/woff" },
  { extension = ".woff2" mime_type = "font/woff2" }
)
`

/** Answers once Glewlwyd serves its API (it logs "started" before its port is bound: poll instead). */
const waitUntilServing = async (child: ChildProcess, url: string): Promise<boolean> => {
  let exited = child.exitCode !== null
  child.once("exit", () => {
    exited = true
  })
  for (;;) {
    if (exited) return false
    const answered = await fetch(url, { signal: AbortSignal.timeout(5_000) }).then(
      (response) => response.status < 500,
      () => false
    )
    if (answered) return true
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

/** A cookie-carrying JSON client of the admin API. */
const adminApi = (baseUrl: string) => {
  let cookie = ""
  const request = async (method: string, path: string, body?: unknown) => {
    const response = await fetch(`${baseUrl}/api${path}`, {
      method,
      headers: {
        ...(cookie === "" ? {} : { cookie }),
        ...(body === undefined ? {} : { "content-type": "application/json" })
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) })
    })
    const setCookie = response.headers.get("set-cookie")
    if (setCookie !== null) cookie = setCookie.split(";")[0] ?? ""
    const text = await response.text()
    if (!response.ok) throw new Error(`Glewlwyd admin API ${method} ${path}: HTTP ${response.status} ${text}`)
    return text
  }
  return { request }
}

const oidcPlugin = (issuer: string, accessTokenSeconds: number) => {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 })
  return {
    module: "oidc",
    name: "oidc",
    display_name: "OpenID Connect",
    enabled: true,
    parameters: {
      iss: issuer,
      "jwt-type": "rsa",
      "jwt-key-size": "256",
      key: privateKey.export({ type: "pkcs1", format: "pem" }).toString(),
      cert: publicKey.export({ type: "spki", format: "pem" }).toString(),
      "jwks-show": true,
      "access-token-duration": accessTokenSeconds,
      "refresh-token-duration": 1_209_600,
      "code-duration": 600,
      "refresh-token-rolling": true,
      "refresh-token-one-use": "always",
      "client-refresh-token-one-use-parameter": "refresh-token-one-use",
      "allow-non-oidc": false,
      "auth-type-code-enabled": true,
      "auth-type-token-enabled": false,
      "auth-type-id-token-enabled": true,
      "auth-type-none-enabled": false,
      "auth-type-password-enabled": false,
      "auth-type-client-enabled": false,
      "auth-type-device-enabled": false,
      "auth-type-refresh-enabled": true,
      "pkce-allowed": true,
      "pkce-method-plain-allowed": false,
      "introspection-revocation-allowed": true,
      "introspection-revocation-auth-scope": [],
      "introspection-revocation-allow-target-client": true,
      "allowed-scope": ["openid", "offline_access"],
      scope: [],
      claims: [],
      "additional-parameters": [],
      "name-claim": "on-demand",
      "email-claim": "no",
      "scope-claim": "no",
      "secret-type": "pairwise",
      "request-parameter-allow": false,
      "session-management-allowed": false,
      "register-client-allowed": false
    }
  }
}

export const startGlewlwyd = async (options: GlewlwydOptions): Promise<Glewlwyd> => {
  const dir = await mkdtemp(join(tmpdir(), "tb-glewlwyd-"))
  const cleanup = () => rm(dir, { recursive: true, force: true })
  try {
    // The packaged web app has a config.json that links to a folder holding the real file
    await cp(WEBAPP, join(dir, "webapp"), { recursive: true, dereference: true })
    const webConfig = await readFile("/etc/glewlwyd/config-2.7.json/config.json").catch(() =>
      readFile(join(WEBAPP, "config.json"))
    )
    await rm(join(dir, "webapp", "config.json"), { recursive: true, force: true })
    await writeFile(join(dir, "webapp", "config.json"), webConfig)
    const db = openDatabase(join(dir, "glewlwyd.db"))
    try {
      db.exec(await readFile(SQL_INIT, "utf8"))
    } finally {
      db.close()
    }

    let child: ChildProcess | undefined
    let port = 0
    for (let attempt = 1; child === undefined; attempt++) {
      port = await freePort()
      const configFile = join(dir, "glewlwyd.conf")
      await writeFile(configFile, configText(dir, port))
      const started = spawn(options.binary ?? DEFAULT_GLEWLWYD, ["--config-file", configFile], {
        stdio: ["ignore", "pipe", "pipe"]
      })
      started.stdout?.resume()
      started.stderr?.resume()
      if (await waitUntilServing(started, `http://127.0.0.1:${port}/api/auth/scheme/`)) {
        child = started
      } else if (attempt >= 5) {
        const log = await readFile(join(dir, "glewlwyd.log"), "utf8").catch(() => "")
        throw new Error(`Glewlwyd did not start after ${attempt} ports; its log ends:\n${log.slice(-2000)}`)
      }
    }
    const running = child
    const baseUrl = `http://127.0.0.1:${port}`
    const issuer = `${baseUrl}/api/oidc`
    const stop = async () => {
      if (running.exitCode === null) {
        running.kill("SIGTERM")
        await once(running, "exit")
      }
    }
    try {
      const admin = adminApi(baseUrl)
      await admin.request("POST", "/auth/", PACKAGED_ADMIN)
      await admin.request("PUT", `/user/${PACKAGED_ADMIN.username}`, {
        password: randomBytes(18).toString("base64url"),
        scope: ["g_admin", "g_profile"],
        enabled: true
      })
      await admin.request("POST", "/scope/", {
        name: "offline_access",
        display_name: "Offline access",
        description: "Refresh tokens",
        password_required: true,
        password_max_age: 0,
        scheme: {}
      })
      await admin.request("POST", "/mod/plugin/", oidcPlugin(issuer, options.accessTokenSeconds ?? 90))
      const client = {
        id: options.clientId ?? "token-broker-interop",
        // base64url: `-` and `_` are what RFC 6749 form-encoding changes
        secret: randomBytes(24).toString("base64url")
      }
      await admin.request("POST", "/client/", {
        client_id: client.id,
        name: "token-broker interop",
        enabled: true,
        confidential: true,
        password: client.secret,
        redirect_uri: [options.redirectUri],
        authorization_type: ["code", "refresh_token"],
        scope: ["openid", "offline_access"],
        token_endpoint_auth_method: ["client_secret_basic", "client_secret_post"]
      })
      const user = { username: "alice", password: randomBytes(18).toString("base64url") }
      await admin.request("POST", "/user/", {
        username: user.username,
        name: "Alice",
        email: "alice@example.test",
        password: user.password,
        scope: ["openid", "offline_access"],
        enabled: true
      })
      return {
        issuer,
        baseUrl,
        client,
        user,
        accessTokensIssued: () => {
          const db = openDatabase(join(dir, "glewlwyd.db"), { readonly: true })
          try {
            return Number(db.prepare("SELECT COUNT(*) AS n FROM gpo_access_token").get().n)
          } finally {
            db.close()
          }
        },
        log: () => readFile(join(dir, "glewlwyd.log"), "utf8"),
        close: async () => {
          await stop()
          await cleanup()
        }
      }
    } catch (error) {
      await stop()
      throw error
    }
  } catch (error) {
    await cleanup()
    throw error
  }
}
