import { startDevIdp } from "@token-broker/dev-idp"
import { describe, expect, it } from "vitest"
import {
  allWorkerOutput,
  chaosSecrets,
  killAllChaosWorkers,
  retireProvisioner,
  secretScanRow,
  startChaosWorker
} from "../chaos/harness.js"
import { tokenChecker } from "../chaos/tokenChecks.js"
import { prepareBackend } from "./support/backends.js"
import { startProvisioner } from "./support/provisioning.js"
import { suiteSetup } from "./support/suiteSetup.js"
import type { RevealedOutcome } from "./support/workerProtocol.js"

// Controls of the chaos suite's per-serve check (issue 12): a deliberately wrong serve is caught.
const idp = suiteSetup(60_000, async (defer) => {
  const started = await startDevIdp()
  defer(() => started.close())
  return started
})

describe("chaos detectors: every sampled serve is checked", () => {
  it("a token served again after it expired, or from the store of a marked grant, is caught", async () => {
    const dev = await idp()
    const alice = dev.users[0]
    if (alice === undefined) throw new Error("dev-idp has no users")
    const tokens = await dev.login({
      clientId: "token-broker",
      username: alice.username,
      password: alice.password,
      scopes: ["openid", "offline_access", "notes:read", "notes:write"],
      resource: dev.notesAudience
    })
    const exp = (
      JSON.parse(Buffer.from(tokens.access_token.split(".")[1] ?? "", "base64url").toString()) as {
        exp: number
      }
    ).exp
    const checker = tokenChecker(dev)
    // a sound serve, then the same token checked again at two later serves
    checker.check(alice.sub, tokens.access_token, Date.now(), { source: "refresh", status: "active" })
    checker.check(alice.sub, tokens.access_token, Date.now(), {
      source: "cache",
      status: "reconsent_required"
    })
    const sound = await checker.settle()
    expect(sound.wrong).toEqual([])
    checker.check(alice.sub, tokens.access_token, exp * 1000 + 1_000, { source: "cache", status: "active" })
    checker.check(alice.sub, tokens.access_token, Date.now(), {
      source: "store",
      status: "reconsent_required"
    })
    const { checked, wrong } = await checker.settle()
    expect(checked).toBe(4)
    expect(wrong).toEqual([
      expect.stringMatching(/expired 1000 ms before it was served/),
      expect.stringMatching(/served from store while the grant read reconsent_required/)
    ])
  })
})

describe("chaos detectors: the secret scan of the workers' output", () => {
  it("knows the run's stored refresh tokens, verifiers and served tokens, and fires on a planted one", async () => {
    const dev = await idp()
    const alice = dev.users[0]
    if (alice === undefined) throw new Error("dev-idp has no users")
    const backend = await prepareBackend("sqlite")
    const provisioner = await startProvisioner(dev, backend.spec)
    try {
      await provisioner.connect(alice)
      await provisioner.expireAccessToken(alice.sub)
      const worker = await startChaosWorker(
        provisioner.workerInit("scan-control", { ttlMs: 5_000, waitMs: 10_000 })
      )
      const served = await worker.request<RevealedOutcome>({ kind: "token", subject: alice.sub })
      expect(served.ok).toBe(true)
    } finally {
      await killAllChaosWorkers()
      await retireProvisioner(provisioner, "scan control")
      await backend.cleanup()
    }
    for (const label of [
      "refresh token of",
      "PKCE code verifier of",
      "access token served by a worker",
      "client secret of",
      "key bench"
    ]) {
      expect(chaosSecrets.count(label), label).toBeGreaterThan(0)
    }
    const printed = allWorkerOutput()
    const clean = secretScanRow(printed, chaosSecrets)
    expect(clean.ok, clean.outcome).toBe(true)
    // a refresh token printed as base64, and a piece of a verifier, are caught
    const refresh = [...chaosSecrets].find((s) => s.label.startsWith("refresh token of"))
    const verifier = [...chaosSecrets].find((s) => s.label.startsWith("PKCE code verifier of"))
    const planted = `${printed}\nrefreshed ${Buffer.from(String(refresh?.value)).toString("base64")}\nv=${String(verifier?.value).slice(5, 20)}\n`
    const caught = secretScanRow(planted, chaosSecrets)
    expect(caught.ok).toBe(false)
    expect(caught.outcome).toMatch(/\(base64\) refresh token of u-alice/)
    expect(caught.outcome).toMatch(/\(substring\) PKCE code verifier of u-alice/)
    expect(caught.outcome).not.toContain(String(refresh?.value).slice(0, 12))
  })
})
