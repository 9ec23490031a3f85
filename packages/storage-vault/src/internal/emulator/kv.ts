import { type EngineRequest, envelope, errors, noContent, Reply, vaultTime } from "./reply.js"

/** The KV version 2 engine: versions, check-and-set, soft delete, destroy, metadata, listing. */
export interface KvVersion {
  data: Record<string, unknown>
  readonly createdTime: string
  deletionTime: string
  destroyed: boolean
}

export interface KvSecret {
  readonly versions: Map<number, KvVersion>
  currentVersion: number
  oldestVersion: number
  readonly createdTime: string
  updatedTime: string
}

export interface KvMount {
  readonly kind: "kv"
  readonly secrets: Map<string, KvSecret>
  config: { maxVersions: number; casRequired: boolean }
}

export const listKeys = (secrets: Map<string, KvSecret>, folder: string): Array<string> => {
  const base = folder === "" || folder.endsWith("/") ? folder : `${folder}/`
  const keys = new Set<string>()
  for (const path of secrets.keys()) {
    if (!path.startsWith(base)) continue
    const rest = path.slice(base.length)
    const slash = rest.indexOf("/")
    keys.add(slash === -1 ? rest : rest.slice(0, slash + 1))
  }
  return [...keys].filter((k) => k !== "").sort()
}

export const metadataOf = (secret: KvSecret, config: KvMount["config"]) => ({
  cas_required: config.casRequired,
  created_time: secret.createdTime,
  current_version: secret.currentVersion,
  custom_metadata: null,
  delete_version_after: "0s",
  max_versions: 0,
  oldest_version: secret.oldestVersion,
  updated_time: secret.updatedTime,
  versions: Object.fromEntries(
    [...secret.versions].map(([n, v]) => [
      String(n),
      { created_time: v.createdTime, deletion_time: v.deletionTime, destroyed: v.destroyed }
    ])
  )
})

export const versionMetadata = (n: number, v: KvVersion) => ({
  created_time: v.createdTime,
  custom_metadata: null,
  deletion_time: v.deletionTime,
  destroyed: v.destroyed,
  version: n
})

export const handleKv = (mount: KvMount, request: EngineRequest): Reply => {
  const { mountName, rest, method, list, body, check } = request
  const slash = rest.indexOf("/")
  const area = slash === -1 ? rest : rest.slice(0, slash)
  const path = slash === -1 ? "" : rest.slice(slash + 1)
  const now = Date.now()
  if (area === "config") {
    if (method === "GET") {
      return (
        check("read") ??
        new Reply(
          200,
          envelope({
            cas_required: mount.config.casRequired,
            delete_version_after: "0s",
            max_versions: mount.config.maxVersions
          })
        )
      )
    }
    const denied = check("update")
    if (denied !== undefined) return denied
    if (typeof body.max_versions === "number") mount.config.maxVersions = body.max_versions
    if (typeof body.cas_required === "boolean") mount.config.casRequired = body.cas_required
    return noContent()
  }
  if (area === "data") {
    const secret = mount.secrets.get(path)
    if (method === "GET") {
      const denied = check("read")
      if (denied !== undefined) return denied
      const latest = secret?.versions.get(secret.currentVersion)
      if (secret === undefined || latest === undefined) return errors(404)
      if (latest.deletionTime !== "" || latest.destroyed) {
        return new Reply(
          404,
          envelope({ data: null, metadata: versionMetadata(secret.currentVersion, latest) })
        )
      }
      return new Reply(
        200,
        envelope({ data: latest.data, metadata: versionMetadata(secret.currentVersion, latest) })
      )
    }
    if (method === "POST" || method === "PUT") {
      const denied = check(secret === undefined ? "create" : "update")
      if (denied !== undefined) return denied
      const data = body.data
      if (typeof data !== "object" || data === null || Array.isArray(data))
        return errors(400, "no data provided")
      const cas = (body.options as { cas?: unknown } | undefined)?.cas
      if (cas === undefined && mount.config.casRequired) {
        return errors(400, "check-and-set parameter required for this call")
      }
      const current = secret?.currentVersion ?? 0
      if (cas !== undefined && Number(cas) !== current) {
        return errors(400, "check-and-set parameter did not match the current version")
      }
      const time = vaultTime(now)
      const target: KvSecret = secret ?? {
        versions: new Map(),
        currentVersion: 0,
        oldestVersion: 0,
        createdTime: time,
        updatedTime: time
      }
      const version = target.currentVersion + 1
      const written: KvVersion = {
        data: structuredClone(data as Record<string, unknown>),
        createdTime: time,
        deletionTime: "",
        destroyed: false
      }
      target.versions.set(version, written)
      target.currentVersion = version
      target.updatedTime = time
      if (target.oldestVersion === 0) target.oldestVersion = version
      while (target.versions.size > mount.config.maxVersions) {
        target.versions.delete(target.oldestVersion)
        target.oldestVersion++
      }
      mount.secrets.set(path, target)
      return new Reply(200, envelope(versionMetadata(version, written), { mount_type: "kv" }))
    }
    if (method === "DELETE") {
      const denied = check("delete")
      if (denied !== undefined) return denied
      const latest = secret?.versions.get(secret.currentVersion)
      if (latest !== undefined && latest.deletionTime === "") latest.deletionTime = vaultTime(now)
      return noContent()
    }
  }
  if ((area === "delete" || area === "destroy") && (method === "POST" || method === "PUT")) {
    // soft delete marks versions deleted; destroy removes their data for good
    const denied = check("update")
    if (denied !== undefined) return denied
    const secret = mount.secrets.get(path)
    const versions = Array.isArray(body.versions) ? body.versions : []
    if (versions.length === 0) return errors(400, "no version number provided")
    for (const n of versions) {
      const v = secret?.versions.get(Number(n))
      if (v === undefined) continue
      if (area === "destroy") {
        v.destroyed = true
        v.data = {}
      } else if (v.deletionTime === "") v.deletionTime = vaultTime(now)
    }
    return noContent()
  }
  if (area === "metadata") {
    if (method === "GET" && list) {
      const denied = check("list")
      if (denied !== undefined) return denied
      const keys = listKeys(mount.secrets, path)
      return keys.length === 0 ? errors(404) : new Reply(200, envelope({ keys }))
    }
    if (method === "GET") {
      const denied = check("read")
      if (denied !== undefined) return denied
      const secret = mount.secrets.get(path)
      return secret === undefined ? errors(404) : new Reply(200, envelope(metadataOf(secret, mount.config)))
    }
    if (method === "DELETE") {
      const denied = check("delete")
      if (denied !== undefined) return denied
      mount.secrets.delete(path)
      return noContent()
    }
  }
  return ["config", "data", "delete", "destroy", "metadata"].includes(area)
    ? errors(405, "unsupported operation")
    : errors(404, `no handler for route "${mountName}/${rest}". route entry not found.`)
}
