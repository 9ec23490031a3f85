/** `token-broker init`: a new config file with a generated key, for SQLite, PostgreSQL or MariaDB. */
import { access, mkdir, writeFile } from "node:fs/promises"
import { basename, dirname, join, relative } from "node:path"
import { KeyRing } from "@token-broker/core"
import { Effect, Redacted } from "effect"
import { CliEnvironment } from "../internal/Environment.js"
import { type CliFailure, operationFailed, usageError } from "../internal/Failure.js"
import { printLine, printNote } from "../internal/Output.js"

export interface InitArgs {
  readonly path: string
  readonly storage: "sqlite" | "postgres" | "mysql"
  readonly providerId: string
  readonly issuer: string
  readonly clientId: string
  readonly clientSecretEnv: string
}

const KID = "k1"

const starterConfig = (args: InitArgs, keyFile: string, dbFile: string): string => {
  const insecure = args.issuer.startsWith("http://")
  const storage =
    args.storage === "sqlite"
      ? ["storage:", "  kind: sqlite", `  filename: ./${dbFile}   # relative to this file`]
      : args.storage === "mysql"
        ? [
            "storage:",
            "  kind: mysql   # MariaDB 10.11",
            "  url: { env: MARIADB_URL }   # mysql://user:password@host:3306/token_broker"
          ]
        : [
            "storage:",
            "  kind: postgres",
            "  url: { env: DATABASE_URL }   # postgres://user:password@host:5432/db",
            "  schema: token_broker"
          ]
  return [
    "# token-broker configuration. Check it with: token-broker doctor",
    "# Secrets are never written here: each is { env: NAME } or { file: path } (mode 0600).",
    "tenant: default",
    "",
    ...storage,
    "  migrate: false   # apply schema changes explicitly: token-broker migrate",
    "",
    "keyRing:",
    "  kind: local",
    "  keys:",
    `    - kid: ${KID}`,
    `      file: ./${keyFile}   # 32 random bytes, base64; add keys with: token-broker keys add`,
    "",
    "providers:",
    `  - id: ${args.providerId}`,
    `    issuer: ${args.issuer}`,
    `    clientId: ${args.clientId}`,
    "    clientAuthentication:",
    "      method: client_secret_basic",
    `      clientSecret: { env: ${args.clientSecretEnv} }`,
    "    scopes: [openid, offline_access]",
    ...(insecure ? ["    allowInsecureRequests: true   # http:// issuer: local development only"] : []),
    ""
  ].join("\n")
}

/** Writes a file that must not exist yet (O_EXCL), owner-only. */
const writeNew = (path: string, text: string): Effect.Effect<void, CliFailure> =>
  Effect.tryPromise({
    try: () => writeFile(path, text, { flag: "wx", mode: 0o600 }),
    catch: (cause) =>
      (cause as NodeJS.ErrnoException).code === "EEXIST"
        ? operationFailed(
            `${path} already exists; init never overwrites`,
            "choose another --config path, or edit the existing file"
          )
        : operationFailed(`cannot write ${path} (${(cause as NodeJS.ErrnoException).code ?? "error"})`)
  })

export const init = (args: InitArgs): Effect.Effect<void, CliFailure, CliEnvironment> =>
  Effect.gen(function* () {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(args.clientSecretEnv)) {
      return yield* usageError(
        `--client-secret-env "${args.clientSecretEnv}" is not an environment variable name`
      )
    }
    const env = yield* CliEnvironment
    const dir = dirname(args.path)
    const stem = basename(args.path).replace(/\.(ya?ml|json)$/, "")
    const keyFile = join("keys", `${KID}.key`)
    const dbFile = `${stem}.db`
    for (const path of [args.path, join(dir, keyFile)]) {
      const exists = yield* Effect.promise(() =>
        access(path).then(
          () => true,
          () => false
        )
      )
      if (exists) {
        return yield* operationFailed(
          `${path} already exists; init never overwrites`,
          "choose another --config path, or edit the existing file"
        )
      }
    }
    yield* Effect.tryPromise({
      try: () => mkdir(join(dir, "keys"), { recursive: true, mode: 0o700 }),
      catch: () => operationFailed(`cannot create ${join(dir, "keys")}`)
    })
    yield* writeNew(join(dir, keyFile), `${Redacted.value(KeyRing.generateKeyMaterial())}\n`)
    yield* writeNew(args.path, starterConfig(args, keyFile, dbFile))
    const shown = relative(env.cwd, args.path) || args.path
    yield* printLine(`Wrote ${args.path}`)
    yield* printLine(
      `Wrote ${join(dir, keyFile)} (encryption key ${KID}, mode 0600: back it up, grants cannot be read without it)`
    )
    yield* printNote("")
    yield* printNote("Next:")
    yield* printNote(
      `  export ${args.clientSecretEnv}=...   # the client secret of ${args.clientId} at ${args.issuer}`
    )
    if (args.storage === "postgres")
      yield* printNote("  export DATABASE_URL=postgres://user:password@host:5432/db")
    if (args.storage === "mysql")
      yield* printNote("  export MARIADB_URL=mysql://user:password@host:3306/token_broker")
    yield* printNote(`  token-broker migrate --config ${shown}`)
    yield* printNote(`  token-broker doctor --config ${shown}`)
  })
