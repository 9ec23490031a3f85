/**
 * What MCP clients' tokens must carry: scopes of this server at the authorization server where they sign
 * in (advertised in the RFC 9728 metadata). Every request needs `tools`; the notes tools also need the
 * scope of what they do, so a client signed in for reading cannot write. Defaults: `mcp:tools`,
 * `notes:read`, `notes:write`; an authorization server without such scopes configures `[]`.
 */
export interface ScopePolicy {
  /** Every scope a client may ask for, in the order a first sign-in asks them. */
  readonly supported: ReadonlyArray<string>
  /** What every request needs. */
  readonly base: ReadonlyArray<string>
  /** What a tool needs beyond `base`. */
  readonly byTool: Readonly<Record<string, ReadonlyArray<string>>>
}

export const makeScopePolicy = (scopes: {
  readonly tools: ReadonlyArray<string>
  readonly notesRead: ReadonlyArray<string>
  readonly notesWrite: ReadonlyArray<string>
}): ScopePolicy => ({
  supported: [...new Set([...scopes.tools, ...scopes.notesRead, ...scopes.notesWrite])],
  base: scopes.tools,
  byTool: {
    notes_list: scopes.notesRead,
    notes_get: scopes.notesRead,
    notes_create: scopes.notesWrite,
    notes_update: scopes.notesWrite,
    notes_delete: scopes.notesWrite
  }
})

export const DEFAULT_SCOPES = makeScopePolicy({
  tools: ["mcp:tools"],
  notesRead: ["notes:read"],
  notesWrite: ["notes:write"]
})
