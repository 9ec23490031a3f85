import type { GrantFilter, GrantKey, GrantRecord } from "../Grant.js"

/** Opaque paging cursor: the last key of a page, base64url-encoded JSON. */
export const encodeCursor = (key: GrantKey): string =>
  Buffer.from(JSON.stringify([key.tenant, key.subject, key.provider]), "utf8").toString("base64url")

/** Decodes a cursor made by `encodeCursor`; null when it is not one. */
export const decodeCursor = (cursor: string): GrantKey | null => {
  try {
    const parsed: unknown = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"))
    if (Array.isArray(parsed) && parsed.length === 3 && parsed.every((part) => typeof part === "string")) {
      const [tenant, subject, provider] = parsed as [string, string, string]
      return { tenant, subject, provider }
    }
    return null
  } catch {
    return null
  }
}

export const matchesFilter = (record: GrantRecord, filter: GrantFilter): boolean =>
  (filter.tenant === undefined || record.tenant === filter.tenant) &&
  (filter.subject === undefined || record.subject === filter.subject) &&
  (filter.provider === undefined || record.provider === filter.provider) &&
  (filter.status === undefined || record.status === filter.status)
