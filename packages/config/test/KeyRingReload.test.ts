import { randomBytes } from "node:crypto"
import { mkdtemp, rename, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { KeyRing } from "@token-broker/core"
import { Effect, ManagedRuntime, Redacted } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  type ConfigFileInput,
  type FollowedKeyRing,
  followKeyRing,
  type KeyRingReload,
  keyRingLayer,
  loadConfig
} from "../src/index.js"
import { configFile } from "./support/configFile.js"

const env = {
  KEY1: randomBytes(32).toString("base64"),
  KEY2: randomBytes(32).toString("base64"),
  NOTES_SECRET: "notes-client-secret-0123456789"
}

const file = configFile

const bothKeys = (current: string) => ({
  kind: "local" as const,
  keys: [
    { kid: "k1", env: "KEY1" },
    { kid: "k2", env: "KEY2" }
  ],
  current
})

type Event = KeyRingReload | { readonly _tag: "Error"; readonly field: string | undefined }

describe("followKeyRing: a running key ring follows its config file", () => {
  let dir: string
  let path: string
  let runtime: ManagedRuntime.ManagedRuntime<KeyRing.KeyRing, unknown>
  let followed: FollowedKeyRing
  const events: Array<Event> = []
  const waiters: Array<() => void> = []
  /** Resolves with the first event (from now on, or already seen since `from`) that matches. */
  const eventWhere = async (from: number, match: (event: Event) => boolean): Promise<Event> => {
    for (;;) {
      const found = events.slice(from).find(match)
      if (found !== undefined) return found
      await new Promise<void>((r) => waiters.push(r))
    }
  }
  const push = (event: Event) => {
    events.push(event)
    for (const wake of waiters.splice(0)) wake()
  }
  /** Written whole and renamed into place, as the CLI's key commands write the config. */
  const writeConfig = async (input: ConfigFileInput) => {
    const partial = `${path}.partial`
    await writeFile(partial, JSON.stringify(input), { mode: 0o600 })
    await rename(partial, path)
  }
  const encryptNow = () =>
    runtime.runPromise(
      Effect.flatMap(KeyRing.KeyRing, (ring) =>
        Effect.map(ring.encrypt(Redacted.make("a refresh token"), "aad"), (envelope) => ({
          envelope,
          kid: ring.kidOf(envelope)
        }))
      )
    )

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "tb-keyreload-"))
    path = join(dir, "token-broker.json")
    await writeConfig(file(bothKeys("k1")))
    const config = await Effect.runPromise(loadConfig({ path, env }))
    runtime = ManagedRuntime.make(keyRingLayer(config.keyRing))
    followed = followKeyRing({
      path,
      env,
      run: (effect) => runtime.runPromise(effect),
      onReload: push,
      onError: (error) => push({ _tag: "Error", field: error.field })
    })
  })
  afterAll(async () => {
    followed?.close()
    await runtime?.dispose()
    await rm(dir, { recursive: true, force: true })
  })

  it("writes under the key the file makes current, without a restart; older envelopes still decrypt", async () => {
    const before = await encryptNow()
    expect(before.kid).toBe("k1")
    const from = events.length
    await writeConfig(file(bothKeys("k2")))
    const reloaded = await eventWhere(from, (e) => e._tag === "Reloaded" && e.currentKid === "k2")
    expect(reloaded).toMatchObject({ _tag: "Reloaded", currentKid: "k2", kids: ["k1", "k2"] })
    expect((await encryptNow()).kid).toBe("k2")
    const plain = await runtime.runPromise(
      Effect.flatMap(KeyRing.KeyRing, (ring) => ring.decrypt(before.envelope, "aad"))
    )
    expect(Redacted.value(plain)).toBe("a refresh token")
  })

  it("keeps the keys it had when the file no longer loads, and names the field", async () => {
    const from = events.length
    await writeConfig(file({ ...bothKeys("k2"), current: "k9" }))
    const failed = await eventWhere(from, (e) => e._tag === "Error")
    expect(failed).toEqual({ _tag: "Error", field: "keyRing.current" })
    expect((await encryptNow()).kid).toBe("k2")
  })

  it("reloads on demand (SIGHUP), and a retired key no longer decrypts", async () => {
    followed.close()
    // the watcher is closed: only the explicit reload below can pick up this file
    const onlyK2 = file({ kind: "local", keys: [{ kid: "k2", env: "KEY2" }] })
    await writeConfig(onlyK2)
    const from = events.length
    await followed.reload()
    expect(events.slice(from)).toEqual([
      { _tag: "Reloaded", previousKid: "k2", currentKid: "k2", kids: ["k2"] }
    ])
    const k1Envelope = await runtime.runPromise(
      Effect.flatMap(KeyRing.KeyRing, (ring) =>
        Effect.flip(ring.decrypt("tb1.k1.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA", "aad"))
      )
    )
    expect(k1Envelope).toMatchObject({ _tag: "DecryptionFailed", reason: "unknown_key" })
  })
})
