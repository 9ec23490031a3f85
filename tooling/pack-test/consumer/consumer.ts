/**
 * A fresh project's use of the published packages, compiled against the tarballs' declarations with
 * `skipLibCheck: false` and then run: a background token on SQLite, through config's layer (which imports
 * the installed @token-broker/storage-sqlite on demand) and a real dev-idp. Prints one JSON line.
 */
import { randomBytes } from "node:crypto"
import { existsSync } from "node:fs"
import { join } from "node:path"
import { BrokerClient } from "@token-broker/client"
import { brokerLayer, type ConfigFileInput, jsonSchema, parseConfig } from "@token-broker/config"
import { GrantStore, TokenBroker } from "@token-broker/core"
import { startDevIdp } from "@token-broker/dev-idp"
import { MysqlGrantStore } from "@token-broker/storage-mysql"
import { PgGrantStore } from "@token-broker/storage-postgres"
import { SqlGrantStore } from "@token-broker/storage-sql"
import { SqliteGrantStore } from "@token-broker/storage-sqlite"
import { TransitKeyRing, VaultGrantStore } from "@token-broker/storage-vault"
import { Effect, ManagedRuntime, Redacted } from "effect"

// every package's public surface is reachable from a consumer's code
const surfaces: ReadonlyArray<unknown> = [
  BrokerClient,
  MysqlGrantStore.layer,
  PgGrantStore.layer,
  SqlGrantStore,
  SqliteGrantStore.layer,
  TransitKeyRing.layer,
  VaultGrantStore.layer,
  jsonSchema
]

const dir = process.argv[2] ?? process.cwd()
const idp = await startDevIdp()
try {
  const client = idp.client("token-broker")
  const alice = idp.users[0]
  if (alice === undefined) throw new Error("dev-idp has no user")
  const env = { KEY: randomBytes(32).toString("base64"), NOTES_SECRET: client.clientSecret ?? "" }
  const input: ConfigFileInput = {
    storage: { kind: "sqlite", filename: "grants.db" },
    keyRing: { kind: "local", keys: [{ kid: "k1", env: "KEY" }] },
    providers: [
      {
        id: "notes",
        issuer: idp.issuer,
        clientId: client.clientId,
        clientAuthentication: { method: "client_secret_basic", clientSecret: { env: "NOTES_SECRET" } },
        redirectUri: `${idp.issuer}/__dev/callback`,
        scopes: ["notes:read"],
        resource: idp.notesAudience,
        allowInsecureRequests: true
      }
    ]
  }
  const config = await Effect.runPromise(parseConfig(input, env, { baseDir: dir }))
  const runtime = ManagedRuntime.make(brokerLayer(config))
  try {
    const broker = await runtime.runPromise(TokenBroker.TokenBroker)
    const store = await runtime.runPromise(GrantStore.GrantStore)
    const started = await runtime.runPromise(
      broker.startAuthorization({ subject: alice.sub, provider: "notes" })
    )
    const callback = await idp.driveAuthorization(started.authorizationUrl, {
      username: alice.username,
      password: alice.password
    })
    await runtime.runPromise(broker.completeAuthorization(callback))
    const token = await runtime.runPromise(
      broker.backgroundToken({ subject: alice.sub, provider: "notes", scopes: ["notes:read"] })
    )
    const notes = await fetch(`${idp.notesApiUrl}/notes`, {
      headers: { authorization: `Bearer ${Redacted.value(token.accessToken)}` }
    })
    process.stdout.write(
      `${JSON.stringify({
        surfaces: surfaces.length,
        durable: store.capabilities.durable,
        sqliteFile: existsSync(join(dir, "grants.db")),
        notesStatus: notes.status
      })}\n`
    )
  } finally {
    await runtime.dispose()
  }
} finally {
  await idp.close()
}
