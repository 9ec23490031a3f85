import { readFile, stat } from "node:fs/promises"
import { isAbsolute, resolve } from "node:path"
import type { ConfigInvalid } from "@token-broker/core"
import { Duration, Effect, Redacted } from "effect"
import type { Env, VaultConnection } from "../Config.js"
import { invalid } from "./issues.js"
import type { ConfigFile, SecretRefInput } from "./schema.js"

// What the file only refers to, resolved: secrets (environment or 0600 files), durations, Vault connections.

/** A duration as the file writes it (milliseconds or "30 seconds"), decoded. */
export const duration = (value: number | string | undefined): Duration.Duration | undefined =>
  value === undefined ? undefined : Duration.decode(value as Duration.DurationInput)

/** Reads a secret from the environment or a file (mode 0600 or stricter); never logs or returns it in an error. */
export const readSecret = (
  ref: SecretRefInput,
  field: string,
  env: Env,
  baseDir: string
): Effect.Effect<Redacted.Redacted<string>, ConfigInvalid> => {
  if ("env" in ref) {
    const value = env[ref.env]
    return value === undefined || value.length === 0
      ? Effect.fail(
          invalid(
            field,
            `${field}: the environment variable ${ref.env} is not set; export it before starting`
          )
        )
      : Effect.succeed(Redacted.make(value))
  }
  const file = isAbsolute(ref.file) ? ref.file : resolve(baseDir, ref.file)
  return Effect.tryPromise({
    try: async () => {
      const info = await stat(file)
      if (process.platform !== "win32" && (info.mode & 0o077) !== 0) {
        throw new ModeError((info.mode & 0o777).toString(8))
      }
      return (await readFile(file, "utf8")).trim()
    },
    catch: (cause) =>
      cause instanceof ModeError
        ? invalid(
            field,
            `${field}: ${file} is readable by others (mode ${cause.mode}); run: chmod 600 ${file}`
          )
        : invalid(
            field,
            `${field}: cannot read ${file} (${(cause as NodeJS.ErrnoException).code ?? "error"}); check the path`
          )
  }).pipe(
    Effect.flatMap((text) =>
      text.length === 0
        ? Effect.fail(invalid(field, `${field}: ${file} is empty`))
        : Effect.succeed(Redacted.make(text))
    )
  )
}

class ModeError {
  constructor(readonly mode: string) {}
}

export const checkHttps = (value: string, allowed: boolean, field: string, flag: string) => {
  if (new URL(value).protocol === "http:" && !allowed) {
    return Effect.fail(
      invalid(
        field,
        `${field}: ${value} is http://; use https://, or set ${flag}: true (local development and tests only)`
      )
    )
  }
  return Effect.void
}

export const resolveVault = (
  input:
    | Extract<ConfigFile["storage"], { kind: "vault" }>
    | Extract<ConfigFile["keyRing"], { kind: "vault-transit" }>,
  field: string,
  env: Env,
  baseDir: string
): Effect.Effect<VaultConnection, ConfigInvalid> =>
  Effect.gen(function* () {
    yield* checkHttps(
      input.address,
      input.allowInsecureRequests,
      `${field}.address`,
      `${field}.allowInsecureRequests`
    )
    const auth: VaultConnection["auth"] =
      "token" in input.auth
        ? { token: yield* readSecret(input.auth.token, `${field}.auth.token`, env, baseDir) }
        : {
            appRole: {
              roleId: input.auth.appRole.roleId,
              secretId: yield* readSecret(
                input.auth.appRole.secretId,
                `${field}.auth.appRole.secretId`,
                env,
                baseDir
              ),
              mount: input.auth.appRole.mount
            }
          }
    const caCert =
      input.caCertFile === undefined
        ? undefined
        : yield* Effect.tryPromise({
            try: () => readFile(resolve(baseDir, input.caCertFile ?? ""), "utf8"),
            catch: () =>
              invalid(`${field}.caCertFile`, `${field}.caCertFile: cannot read ${input.caCertFile}`)
          })
    return {
      address: input.address.replace(/\/+$/, ""),
      auth,
      namespace: input.namespace,
      caCert,
      timeout: duration(input.timeout),
      retries: input.retries
    }
  })
