import type { ConfigFileInput } from "../../src/index.js"

/** The one provider of the tests' config files: its client secret is read from `NOTES_SECRET`. */
export const notesProvider = {
  id: "notes",
  issuer: "https://idp.example.com",
  clientId: "broker",
  clientAuthentication: { method: "client_secret_basic", clientSecret: { env: "NOTES_SECRET" } },
  scopes: ["notes:read"]
} satisfies ConfigFileInput["providers"][number]

/** A valid config file on the in-memory store with `keyRing` (default: one local key read from `KEY`). */
export const configFile = (
  keyRing: ConfigFileInput["keyRing"] = { kind: "local", keys: [{ kid: "k1", env: "KEY" }] }
): ConfigFileInput => ({ storage: { kind: "memory" }, keyRing, providers: [notesProvider] })
