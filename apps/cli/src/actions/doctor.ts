/** `token-broker doctor`: the config, storage, migrations, keys against stored grants, every provider and the clock, each checked with what to fix. */
import { access } from "node:fs/promises"
import { type Config, keyRingLayer, loadConfig, storeLayer } from "@token-broker/config"
import {
  AuthorizationServer,
  type GrantRecord,
  GrantStore,
  KeyRing,
  metadataUrl,
  type ProviderConfig
} from "@token-broker/core"
import { Clock, Context, Duration, Effect, Either, Layer } from "effect"
import type { Action, ReportArgs } from "../internal/Action.js"
import { describeStorage } from "../internal/Broker.js"
import { CliEnvironment } from "../internal/Environment.js"
import { operationFailed } from "../internal/Failure.js"
import { formatCount, printJson, printLine, printNote, styled } from "../internal/Output.js"
import { credentialChecks, featureChecks } from "./doctorProvider.js"

type Status = "ok" | "warn" | "fail" | "skip"

interface Check {
  readonly name: string
  readonly status: Status
  readonly detail: string
  readonly fix?: string | undefined
}

const CHECK_TIMEOUT = Duration.seconds(15)
/** Grants whose secrets are test-decrypted with the configured keys. */
const KEY_SAMPLE = 1000
/** Clock skew that breaks token validation (exp/nbf leeway is usually 30-60 s). */
const SKEW_FAIL_SECONDS = 30
const SKEW_WARN_SECONDS = 5

const ok = (name: string, detail: string): Check => ({ name, status: "ok", detail })
const fail = (name: string, detail: string, fix: string): Check => ({ name, status: "fail", detail, fix })
const skip = (name: string, detail: string): Check => ({ name, status: "skip", detail })

const timed = <A, E, R>(effect: Effect.Effect<A, E, R>, what: string) =>
  effect.pipe(
    Effect.timeoutFail({
      duration: CHECK_TIMEOUT,
      onTimeout: () => ({ _tag: "Timeout" as const, message: `${what} did not answer within 15 seconds` })
    })
  )

const exists = (path: string) =>
  Effect.promise(() =>
    access(path).then(
      () => true,
      () => false
    )
  )

/** Storage reachability and schema, then the keys against a sample of stored grants. */
const storageChecks = (config: Config): Effect.Effect<ReadonlyArray<Check>> =>
  Effect.scoped(
    Effect.gen(function* () {
      const where = describeStorage(config)
      const storage = config.storage
      if (storage.kind === "sqlite" && !(yield* exists(storage.filename))) {
        return [
          fail("storage", `${where}: the database file does not exist`, "create it: token-broker migrate"),
          skip("migrations", "no database"),
          ...(yield* keyChecks(config, null))
        ]
      }
      // migrate: false - the doctor looks, it never changes the schema
      const layer = storeLayer(
        storage.kind === "sqlite" || storage.kind === "postgres" || storage.kind === "mysql"
          ? { ...storage, migrate: false }
          : storage
      )
      const built = yield* Effect.either(timed(Layer.build(layer), where))
      if (Either.isLeft(built)) {
        const error = built.left
        if (error._tag === "StorageUnavailable" && /schema version/.test(error.message)) {
          return [
            ok("storage", `${where}: reachable`),
            fail(
              "migrations",
              error.message,
              /newer than this release/.test(error.message)
                ? "upgrade token-broker"
                : "run: token-broker migrate"
            ),
            ...(yield* keyChecks(config, null))
          ]
        }
        return [
          fail(
            "storage",
            `${where}: ${error.message}`,
            storage.kind === "postgres"
              ? "check that PostgreSQL runs and that storage.url (host, port, user, password, database) is right"
              : storage.kind === "mysql"
                ? "check that MariaDB runs and that storage.url (host, port, user, password, database) is right"
                : storage.kind === "vault"
                  ? "check that Vault is reachable and the token or AppRole is valid"
                  : "check the file's path and permissions"
          ),
          skip("migrations", "storage unreachable"),
          ...(yield* keyChecks(config, null))
        ]
      }
      const store = Context.get(built.right, GrantStore.GrantStore)
      const migrations =
        storage.kind === "sqlite" || storage.kind === "postgres" || storage.kind === "mysql"
          ? ok("migrations", "the schema is current")
          : ok("migrations", `${storage.kind} has no schema`)
      return [ok("storage", `${where}: reachable`), migrations, ...(yield* keyChecks(config, store))]
    })
  )

const keyChecks = (
  config: Config,
  store: Context.Tag.Service<GrantStore.GrantStore> | null
): Effect.Effect<ReadonlyArray<Check>> =>
  Effect.scoped(
    Effect.gen(function* () {
      const built = yield* Effect.either(timed(Layer.build(keyRingLayer(config.keyRing)), "the key ring"))
      if (Either.isLeft(built)) {
        return [fail("keys", built.left.message, "fix keyRing in the config")]
      }
      const ring = Context.get(built.right, KeyRing.KeyRing)
      const configured =
        config.keyRing.kind === "local"
          ? config.keyRing.keys
              .map((k) => (k.kid === ring.currentKid ? `${k.kid} (current)` : k.kid))
              .join(", ")
          : `Vault Transit key ${config.keyRing.key}`
      if (store === null)
        return [skip("keys", `${configured}; not checked against grants (storage unavailable)`)]
      const page = yield* Effect.either(timed(store.list({}, null, KEY_SAMPLE), "the store"))
      if (Either.isLeft(page))
        return [skip("keys", `${configured}; grants could not be read: ${page.left.message}`)]
      const failures = new Map<string, { count: number; reason: string; message: string }>()
      let older = 0
      for (const record of page.right as ReadonlyArray<GrantRecord>) {
        const decrypted = yield* Effect.either(
          ring.decrypt(record.refreshToken, KeyRing.aadFor(record, "refresh_token"))
        )
        if (Either.isLeft(decrypted)) {
          const failure = decrypted.left
          const kid = (failure._tag === "DecryptionFailed" ? failure.kid : undefined) ?? "unknown"
          const entry = failures.get(kid) ?? {
            count: 0,
            // a key service that could not be asked (Vault Transit down) says nothing about the data
            reason: failure._tag === "DecryptionFailed" ? failure.reason : "key_service_unavailable",
            message: failure.message
          }
          failures.set(kid, { ...entry, count: entry.count + 1 })
        } else if (ring.kidOf(record.refreshToken) !== ring.currentKid) {
          older += 1
        }
      }
      const sampled = page.right.length
      const scope = `${formatCount(sampled)}${sampled === KEY_SAMPLE ? " (a sample)" : ""} stored grants`
      if (failures.size === 0) {
        const checks: Array<Check> = [ok("keys", `${configured}; ${scope} decrypt`)]
        if (older > 0) {
          checks.push({
            name: "keys",
            status: "warn",
            detail: `${formatCount(older)} grants are still under an older key`,
            fix: "re-encrypt them: token-broker keys rotate"
          })
        }
        return checks
      }
      return [...failures].map(([kid, f]) =>
        fail(
          "keys",
          `${formatCount(f.count)} of ${scope} do not decrypt under key "${kid}": ${f.message}`,
          f.reason === "unknown_key"
            ? `key "${kid}" is not configured: add its key material back to keyRing.keys`
            : f.reason === "authentication_failed"
              ? `the key material configured for "${kid}" is not the one these grants were written with: restore the original key (file or environment variable) for "${kid}"`
              : "the stored data is damaged: revoke these grants and connect again"
        )
      )
    })
  )

const DISCOVERY_NAME = {
  "openid-configuration": "OpenID Connect discovery",
  "oauth-authorization-server": "RFC 8414 metadata"
} as const

/**
 * The provider's metadata read by the broker's own client, as its `discovery` says (the same path
 * refreshes take), then the credentials and features against it, and the clock against the provider's
 * Date header.
 */
const providerChecks = (config: Config): Effect.Effect<ReadonlyArray<Check>> =>
  Effect.gen(function* () {
    const built = yield* Effect.either(AuthorizationServer.make(config.providers))
    if (Either.isLeft(built)) return [fail("providers", built.left.message, "fix the provider in the config")]
    const servers = built.right
    const checks: Array<Check> = []
    let skew: { provider: string; seconds: number } | null = null
    for (const [index, provider] of config.providers.entries()) {
      const name = `provider ${provider.id}`
      const client = yield* Effect.orDie(servers.get(provider.id))
      const read = yield* Effect.either(timed(client.metadata, provider.issuer))
      if (Either.isLeft(read)) {
        const url = metadataUrl(provider) ?? provider.issuer
        checks.push(
          fail(
            name,
            `discovery at ${provider.issuer} failed: ${read.left.message}`,
            `check that ${url} answers from this machine (the provider may be down), the issuer in the config, and providers[${index}].discovery`
          )
        )
        continue
      }
      const metadata = read.right
      const endpoints = provider.endpoints ?? {}
      checks.push(
        ok(
          name,
          metadata.discovery === "none"
            ? `discovery: none, no metadata is read; the configured endpoints: ${Object.entries(endpoints)
                .filter(([, url]) => url !== undefined)
                .map(([endpoint, url]) => `${endpoint} ${url}`)
                .join(", ")}`
            : `${DISCOVERY_NAME[metadata.discovery]} at ${metadata.url} answers`
        )
      )
      checks.push(
        ...(yield* timed(credentialChecks(provider, index, metadata), provider.issuer).pipe(
          Effect.catchAll((timeout) =>
            Effect.succeed([fail(`${name} credentials`, timeout.message, "check that the provider answers")])
          )
        ))
      )
      checks.push(...(yield* featureChecks(client, index, metadata)))
      const seconds = yield* readSkew(provider, metadata.url ?? endpoints.token)
      if (skew === null && seconds !== null) skew = { provider: provider.id, seconds }
    }
    if (skew === null) {
      checks.push(skip("clock", "no provider answered with a Date header"))
    } else {
      const seconds = Math.round(skew.seconds)
      const detail =
        Math.abs(seconds) <= 1
          ? `in step with ${skew.provider}`
          : `${Math.abs(seconds)} s ${seconds > 0 ? "behind" : "ahead of"} ${skew.provider}`
      const fix = "synchronise this machine's clock (NTP): token expiry checks depend on it"
      checks.push(
        Math.abs(seconds) > SKEW_FAIL_SECONDS
          ? fail("clock", detail, fix)
          : Math.abs(seconds) > SKEW_WARN_SECONDS
            ? { name: "clock", status: "warn", detail, fix }
            : ok("clock", detail)
      )
    }
    return checks
  })

/**
 * The seconds the local clock is behind the provider's (positive: local is behind), from the HTTP Date
 * header of a GET of `url` (the metadata document, or with discovery "none" the token endpoint: any
 * answer carries the header, and a GET sends no credentials), through the provider's rewrite.
 */
const readSkew = (provider: ProviderConfig, url: string | undefined): Effect.Effect<number | null> =>
  Effect.gen(function* () {
    if (url === undefined) return null
    const before = yield* Clock.currentTimeMillis
    const response = yield* Effect.either(
      Effect.tryPromise(() =>
        fetch(AuthorizationServer.rewriteUrl(provider.internalBaseUrl, url), {
          method: "GET",
          signal: AbortSignal.timeout(10_000)
        })
      )
    )
    const after = yield* Clock.currentTimeMillis
    if (Either.isLeft(response)) return null
    const date = response.right.headers.get("date")
    yield* Effect.promise(() => response.right.arrayBuffer().catch(() => undefined))
    if (date === null || Number.isNaN(Date.parse(date))) return null
    // the Date header is truncated to the second: compare with the request's midpoint, rounded the same way
    return (Date.parse(date) + 500 - (before + after) / 2) / 1000
  })

const MARK: Record<Status, string> = { ok: "✔", warn: "!", fail: "✖", skip: "-" }
const COLOUR = { ok: "green", warn: "yellow", fail: "red", skip: "dim" } as const

export const doctor: Action<ReportArgs> = (args) =>
  Effect.gen(function* () {
    const env = yield* CliEnvironment
    const checks: Array<Check> = []
    const loaded = yield* Effect.either(loadConfig({ path: args.path, env: env.env }))
    if (Either.isLeft(loaded)) {
      checks.push(
        fail(
          "config",
          loaded.left.message,
          /cannot read/.test(loaded.left.message)
            ? "create one with token-broker init, or pass --config / set TOKEN_BROKER_CONFIG"
            : `fix ${loaded.left.field} in ${args.path}`
        )
      )
    } else {
      const config = loaded.right
      checks.push(
        ok(
          "config",
          `${args.path}: valid (${config.providers.length} provider${config.providers.length === 1 ? "" : "s"})`
        )
      )
      const [storage, providers] = yield* Effect.all([storageChecks(config), providerChecks(config)], {
        concurrency: 2
      })
      checks.push(...storage, ...providers)
    }
    const failed = checks.filter((c) => c.status === "fail").length
    if (args.json) {
      yield* printJson({ ok: failed === 0, checks })
    } else {
      for (const check of checks) {
        const mark = yield* styled("stdout", COLOUR[check.status], MARK[check.status])
        yield* printLine(`${mark} ${check.name}: ${check.detail}`)
        if (check.fix !== undefined && check.status !== "ok") yield* printLine(`    fix: ${check.fix}`)
      }
    }
    if (failed > 0) return yield* operationFailed(`${failed} check${failed === 1 ? "" : "s"} failed`)
    if (!args.json) yield* printNote("Everything checked is in order.")
  })
