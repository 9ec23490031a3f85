/** `token-broker keys list | add | rotate | retire`: the local key ring in the config file, and the grants each key encrypts. */
import { access, mkdir, writeFile } from "node:fs/promises"
import { dirname, join } from "node:path"
import type { Config } from "@token-broker/config"
import { type GrantKey, type GrantRecord, GrantStore, KeyRing, KeyRotation } from "@token-broker/core"
import { Effect, Redacted } from "effect"
import type { Action, ReportArgs } from "../internal/Action.js"
import { loadCliConfig, withStore } from "../internal/Broker.js"
import { editKeyList, type KeyEntry, readKeyList } from "../internal/ConfigFile.js"
import type { CliEnvironment } from "../internal/Environment.js"
import { type CliFailure, fromBrokerError, operationFailed, usageError } from "../internal/Failure.js"
import { formatCount, printJson, printLine, printNote, styled, table } from "../internal/Output.js"
import { makeProgress } from "../internal/Progress.js"

const KID = /^[A-Za-z0-9_-]{1,64}$/
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/

/** Grants per key id, from the envelopes' key ids (no decryption). A grant counts once per key it uses. */
const keyUsage = Effect.gen(function* () {
  const store = yield* GrantStore.GrantStore
  const ring = yield* KeyRing.KeyRing
  const byKid = new Map<string, number>()
  let total = 0
  let after: GrantKey | null = null
  while (true) {
    const page: ReadonlyArray<GrantRecord> = yield* store.list({}, after, 1000)
    for (const record of page) {
      total += 1
      const kids = new Set(
        [record.refreshToken, record.accessToken?.envelope].flatMap((e) =>
          e === undefined ? [] : [ring.kidOf(e) ?? "unknown"]
        )
      )
      for (const kid of kids) byKid.set(kid, (byKid.get(kid) ?? 0) + 1)
    }
    const last = page[page.length - 1]
    if (page.length < 1000 || last === undefined) break
    after = last
  }
  return { total, byKid }
})

const requireLocal = (config: Config, what: string): Effect.Effect<void, CliFailure> =>
  config.keyRing.kind === "local"
    ? Effect.void
    : Effect.fail(
        usageError(
          `${what} manages a local key ring; this config uses Vault Transit (keyRing.kind: vault-transit)`,
          `rotate the Transit key in Vault (vault write -f ${config.keyRing.mount}/keys/${config.keyRing.key}/rotate), then run: token-broker keys rotate`
        )
      )

/** The kid new data is written under: `current`, else the last key (the key ring's own rule). */
const effectiveCurrent = (list: { kids: ReadonlyArray<string>; current: string | undefined }) =>
  list.current ?? list.kids[list.kids.length - 1]

export const list: Action<ReportArgs> = (args) =>
  Effect.gen(function* () {
    const config = yield* loadCliConfig(args.path)
    const { usage, ring } = yield* withStore(
      config,
      Effect.all({ usage: keyUsage, ring: KeyRing.KeyRing }).pipe(Effect.mapError(fromBrokerError))
    )
    const kids = config.keyRing.kind === "local" ? config.keyRing.keys.map((k) => k.kid) : [ring.currentKid]
    const rows = kids.map((kid) => ({
      kid,
      current: kid === ring.currentKid,
      grants: usage.byKid.get(kid) ?? 0
    }))
    const unknown = usage.byKid.get("unknown") ?? 0
    if (args.json) return yield* printJson({ keys: rows, grants: usage.total, unknownKeyGrants: unknown })
    yield* printLine(
      table(
        ["KID", "CURRENT", "GRANTS"],
        rows.map((r) => [r.kid, r.current ? "yes" : "", formatCount(r.grants)])
      )
    )
    if (unknown > 0) {
      yield* printNote(
        yield* styled(
          "stderr",
          "red",
          `${formatCount(unknown)} grants are encrypted under a key that is not configured`
        )
      )
    }
  })

const nextKid = (kids: ReadonlyArray<string>): string => {
  const numbers = kids
    .map((k) => /^k(\d+)$/.exec(k)?.[1])
    .filter((n) => n !== undefined)
    .map(Number)
  let n = Math.max(0, ...numbers) + 1
  while (kids.includes(`k${n}`)) n += 1
  return `k${n}`
}

export const add = (args: {
  readonly path: string
  readonly kid: string | undefined
  readonly makeCurrent: boolean
  readonly env: string | undefined
}): Effect.Effect<void, CliFailure, CliEnvironment> =>
  Effect.gen(function* () {
    const before = yield* readKeyList(args.path)
    if (before.kind !== "local") {
      return yield* usageError(
        `keys add manages a local key ring; this config's keyRing.kind is ${before.kind}`
      )
    }
    const kid = args.kid ?? nextKid(before.kids)
    if (!KID.test(kid)) return yield* usageError(`Key id "${kid}" must be 1-64 characters of A-Z a-z 0-9 _ -`)
    if (before.kids.includes(kid)) return yield* usageError(`Key id "${kid}" is already in the config`)
    if (args.env !== undefined && !ENV_NAME.test(args.env)) {
      return yield* usageError(`--env "${args.env}" is not an environment variable name`)
    }
    const material = KeyRing.generateKeyMaterial()
    let entry: KeyEntry
    if (args.env === undefined) {
      const relativeFile = join("keys", `${kid}.key`)
      const file = join(dirname(args.path), relativeFile)
      if (
        yield* Effect.promise(() =>
          access(file).then(
            () => true,
            () => false
          )
        )
      ) {
        return yield* operationFailed(`${file} already exists; not overwriting a key`)
      }
      yield* Effect.tryPromise({
        try: async () => {
          await mkdir(dirname(file), { recursive: true, mode: 0o700 })
          await writeFile(file, `${Redacted.value(material)}\n`, { flag: "wx", mode: 0o600 })
        },
        catch: (cause) =>
          operationFailed(`cannot write ${file} (${(cause as NodeJS.ErrnoException).code ?? "error"})`)
      })
      entry = { kid, file: `./${relativeFile}` }
    } else {
      entry = { kid, env: args.env }
    }
    // Appending a key would make it current implicitly (the last key is current unless `current` says
    // otherwise), so the current key is written down explicitly.
    const current = args.makeCurrent ? kid : effectiveCurrent(before)
    yield* editKeyList(args.path, { add: [entry], current })
    if (args.env === undefined) {
      // prove the new config loads (the key file's mode, the key's length)
      yield* loadCliConfig(args.path)
      yield* printLine(`Added key ${kid} (${"file" in entry ? entry.file : ""}, mode 0600) to ${args.path}`)
    } else {
      yield* printNote(
        `Added key ${kid} (environment variable ${args.env}) to ${args.path}. Set it wherever token-broker runs:`
      )
      yield* printLine(`export ${args.env}=${Redacted.value(material)}`)
    }
    if (args.makeCurrent) {
      yield* printNote(`${kid} is the current key: new data is encrypted under it once brokers restart.`)
      yield* printNote("Re-encrypt the existing grants with: token-broker keys rotate")
    } else {
      yield* printNote(
        `The current key is still ${current}. Make ${kid} current and re-encrypt every grant with: token-broker keys rotate`
      )
    }
  })

export const rotate = (args: {
  readonly path: string
  readonly json: boolean
  readonly dryRun: boolean
  readonly pageSize: number
}): Effect.Effect<void, CliFailure, CliEnvironment> =>
  Effect.gen(function* () {
    if (!Number.isInteger(args.pageSize) || args.pageSize < 1 || args.pageSize > 5000) {
      return yield* usageError("--page-size must be an integer from 1 to 5000")
    }
    let config = yield* loadCliConfig(args.path)
    let newest: string | undefined
    if (config.keyRing.kind === "local") {
      const keys = yield* readKeyList(args.path)
      newest = keys.kids[keys.kids.length - 1]
      if (newest !== undefined && effectiveCurrent(keys) !== newest) {
        if (args.dryRun) {
          config = { ...config, keyRing: { ...config.keyRing, current: newest } }
        } else {
          // recorded first: a run interrupted after this point is resumed by running rotate again
          yield* editKeyList(args.path, { current: newest })
          config = yield* loadCliConfig(args.path)
          yield* printNote(`${newest} is now the current key in ${args.path}`)
        }
      }
    }
    const result = yield* withStore(
      config,
      Effect.gen(function* () {
        const ring = yield* KeyRing.KeyRing
        const { total } = yield* keyUsage
        const progress = yield* makeProgress(args.dryRun ? "checking" : "re-encrypting", total)
        const result = yield* KeyRotation.reencryptAll({
          dryRun: args.dryRun,
          pageSize: args.pageSize,
          onProgress: (p) =>
            progress.update(
              p.scanned,
              `${args.dryRun ? "to re-encrypt" : "re-encrypted"} ${formatCount(p.reencrypted)} · already current ${formatCount(p.current)} · failed ${formatCount(p.failed)}`
            )
        })
        yield* progress.finish
        return { ...result, currentKid: ring.currentKid }
      }).pipe(Effect.mapError(fromBrokerError))
    )
    const configured = config.keyRing.kind === "local" ? config.keyRing.keys.map((k) => k.kid) : []
    const unused = configured.filter((kid) => kid !== result.currentKid && !result.kidsInUse.includes(kid))
    if (args.json) {
      yield* printJson({
        dryRun: args.dryRun,
        currentKid: result.currentKid,
        scanned: result.scanned,
        reencrypted: result.reencrypted,
        current: result.current,
        failed: result.failed,
        failures: result.failures.map((f) => ({
          ...f.key,
          code: f.error.code,
          reason: f.error.reason,
          kid: f.error.kid
        })),
        kidsInUse: result.kidsInUse,
        retirable: unused
      })
    } else {
      const verb = args.dryRun ? "would re-encrypt" : "re-encrypted"
      yield* printLine(
        `${formatCount(result.scanned)} grants: ${verb} ${formatCount(result.reencrypted)} under ${result.currentKid}, ${formatCount(result.current)} already under it, ${formatCount(result.failed)} failed`
      )
      yield* printLine(`Keys in use: ${result.kidsInUse.join(", ") || "none"}`)
      if (unused.length > 0 && !args.dryRun) {
        yield* printNote(
          `No grant uses ${unused.join(", ")} any more: retire with ${unused.map((k) => `token-broker keys retire ${k}`).join("; ")}`
        )
      }
    }
    if (result.failed > 0) {
      for (const failure of result.failures.slice(0, 10)) {
        yield* printNote(
          `  ${failure.key.tenant}/${failure.key.subject}/${failure.key.provider}: ${failure.error.message}`
        )
      }
      return yield* operationFailed(
        `${formatCount(result.failed)} grants could not be decrypted and were left as they are`,
        "restore the key they were written with (token-broker doctor names it), or revoke those grants"
      )
    }
    if (!args.dryRun && newest !== undefined) {
      yield* printNote(
        "Running brokers reload their key ring when their config file changes (or on SIGHUP; a replica with its own copy of the config once that copy is updated); run keys rotate once more to pick up grants written before they did."
      )
    }
  })

export const retire: Action<{ readonly path: string; readonly kid: string }> = (args) =>
  Effect.gen(function* () {
    const config = yield* loadCliConfig(args.path)
    yield* requireLocal(config, "keys retire")
    const keys = yield* readKeyList(args.path)
    if (!keys.kids.includes(args.kid)) {
      return yield* usageError(`Key "${args.kid}" is not in the config (keys: ${keys.kids.join(", ")})`)
    }
    if (effectiveCurrent(keys) === args.kid) {
      return yield* operationFailed(
        `Key "${args.kid}" is the current key; it cannot be retired`,
        "add a new key and rotate first: token-broker keys add && token-broker keys rotate"
      )
    }
    const usage = yield* withStore(config, keyUsage.pipe(Effect.mapError(fromBrokerError)))
    const using = usage.byKid.get(args.kid) ?? 0
    if (using > 0) {
      return yield* operationFailed(
        `${formatCount(using)} grants are still encrypted under "${args.kid}"; retiring it would make them unreadable`,
        "re-encrypt them first: token-broker keys rotate"
      )
    }
    yield* editKeyList(args.path, { remove: [args.kid], current: keys.current })
    yield* printLine(`Retired key ${args.kid}: no grant uses it, and it is no longer in ${args.path}.`)
    yield* printNote("Keep its key material until no backup of the store needs it, then delete it.")
  })
