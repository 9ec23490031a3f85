import { Effect, Option } from "effect"
import { VaultError } from "../VaultError.js"
import { errorsOf, type VaultClient } from "./client.js"
import { parseVaultTime } from "./serverClock.js"

/** One version of a KV v2 secret as read. */
export interface KvEntry {
  readonly data: Record<string, unknown>
  readonly version: number
  /** Server time (epoch ms) when this version was written. */
  readonly createdTime: number
}

export type KvWrite =
  | { readonly _tag: "Written"; readonly version: number }
  | { readonly _tag: "CasMismatch" }

const invalid = (path: string, what: string) =>
  new VaultError({
    reason: "invalid_response",
    path,
    message: `Vault's answer to ${path} has no valid ${what}: is the mount a KV version 2 engine?`
  })

/** Operations on one KV v2 mount, each a single HTTP request (Vault's documented API). */
export const makeKv = (client: VaultClient, mount: string) => {
  const dataPath = (path: string) => `${mount}/data/${path}`
  const metadataPath = (path: string) => `${mount}/metadata/${path}`

  /** The latest version, or None when the secret does not exist or its latest version was deleted. */
  const read = (path: string): Effect.Effect<Option.Option<KvEntry>, VaultError> =>
    Effect.gen(function* () {
      const full = dataPath(path)
      const response = yield* client.request("GET", full, { allow: [404] })
      if (response.status === 404) return Option.none()
      const body = response.body as { data?: { data?: unknown; metadata?: unknown } } | null
      const data = body?.data?.data
      const metadata = body?.data?.metadata as { version?: unknown; created_time?: unknown } | undefined
      if (data === null) return Option.none()
      if (
        typeof data !== "object" ||
        data === undefined ||
        typeof metadata?.version !== "number" ||
        typeof metadata.created_time !== "string"
      ) {
        return yield* invalid(full, `"data.data" and "data.metadata"`)
      }
      return Option.some({
        data: data as Record<string, unknown>,
        version: metadata.version,
        createdTime: parseVaultTime(metadata.created_time)
      })
    })

  /** Writes a new version only if the current version is `cas` (0: only if the secret does not exist). */
  const write = (
    path: string,
    data: Record<string, unknown>,
    cas: number
  ): Effect.Effect<KvWrite, VaultError> =>
    Effect.gen(function* () {
      const full = dataPath(path)
      const response = yield* client.request("POST", full, {
        body: { options: { cas }, data },
        allow: [400]
      })
      if (response.status === 400) {
        if (errorsOf(response.body).some((e) => /check-and-set/i.test(e)))
          return { _tag: "CasMismatch" } as const
        return yield* new VaultError({
          reason: "invalid_response",
          path: full,
          status: 400,
          message: `Vault refused the write to ${full}: ${errorsOf(response.body).join("; ")}`
        })
      }
      const metadata = (response.body as { data?: { version?: unknown; created_time?: unknown } } | null)
        ?.data
      if (typeof metadata?.version !== "number" || typeof metadata.created_time !== "string") {
        return yield* invalid(full, `"data.version"`)
      }
      // the new version's time was taken by the server while this request was in flight
      client.clock.observe(parseVaultTime(metadata.created_time), 1, response.sentAt, response.receivedAt)
      return { _tag: "Written", version: metadata.version } as const
    })

  /** The secret's current version and the versions whose data still exists (not destroyed). */
  const readMetadata = (
    path: string
  ): Effect.Effect<Option.Option<{ currentVersion: number; kept: ReadonlyArray<number> }>, VaultError> =>
    Effect.gen(function* () {
      const full = metadataPath(path)
      const response = yield* client.request("GET", full, { allow: [404] })
      if (response.status === 404) return Option.none()
      const data = (response.body as { data?: { current_version?: unknown; versions?: unknown } } | null)
        ?.data
      const versions = data?.versions
      if (typeof data?.current_version !== "number" || typeof versions !== "object" || versions === null) {
        return yield* invalid(full, `"data.current_version" and "data.versions"`)
      }
      const kept = Object.entries(versions as Record<string, { destroyed?: unknown }>)
        .filter(([, v]) => v?.destroyed !== true)
        .map(([n]) => Number(n))
        .filter((n) => Number.isInteger(n))
      return Option.some({ currentVersion: data.current_version, kept })
    })

  /** Destroys the data of these versions for good; the metadata (and the version counter) stays. */
  const destroyVersions = (path: string, versions: ReadonlyArray<number>): Effect.Effect<void, VaultError> =>
    versions.length === 0
      ? Effect.void
      : Effect.asVoid(client.request("POST", `${mount}/destroy/${path}`, { body: { versions } }))

  /** Deletes the secret with every version and its metadata. */
  const destroy = (path: string): Effect.Effect<void, VaultError> =>
    Effect.asVoid(client.request("DELETE", metadataPath(path)))

  /** The names under a folder (sub-folders end with `/`); empty when the folder does not exist. */
  const list = (folder: string): Effect.Effect<ReadonlyArray<string>, VaultError> =>
    Effect.gen(function* () {
      const full = metadataPath(folder.endsWith("/") ? folder : `${folder}/`)
      const response = yield* client.request("GET", full, { list: true, allow: [404] })
      if (response.status === 404) return []
      const keys = (response.body as { data?: { keys?: unknown } } | null)?.data?.keys
      if (!Array.isArray(keys) || !keys.every((k) => typeof k === "string")) {
        return yield* invalid(full, `"data.keys"`)
      }
      return keys as ReadonlyArray<string>
    })

  return { read, write, readMetadata, destroyVersions, destroy, list }
}

export type Kv = ReturnType<typeof makeKv>
