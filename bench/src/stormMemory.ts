/**
 * Heap per pending call during a refresh storm: `SUBJECTS` grants (10,000 by default; `pnpm bench` also
 * runs 100,000 in a process capped at 2 GiB with `--max-old-space-size=2048`) whose access tokens all
 * expired, each asked for once at the same moment through the Promise facade of one broker with the
 * refresh cap (`maxConcurrentRefreshes`, 32). The refreshes that got a slot of the cap are held at their
 * `before_upstream` step until every call is pending, so the heap is measured with all `SUBJECTS` calls
 * waiting: `CAP` of them inside a refresh, the rest queued behind the cap. Then they are let go, and every
 * call must be served by exactly one upstream refresh of its own grant (counted by the token endpoint, a
 * process of its own): the bench fails loudly otherwise.
 *
 * Figure: (heap after a forced GC with every call pending - heap before the calls) / SUBJECTS.
 * Baseline, same process, same harness: the same number of pending calls into an async function that
 * only queues its caller (a resolver pushed on an array) - the least any Promise API costs per waiter.
 * The grants sit in the in-memory store before either measurement, so neither figure counts them.
 *
 *   node --expose-gc --import tsx src/stormMemory.ts          (BENCH_STORM_SUBJECTS, BENCH_STORM_CAP)
 *   node --expose-gc --max-old-space-size=2048 --import tsx src/stormMemory.ts 100000
 */
import { type ChildProcess, spawn } from "node:child_process"
import { randomBytes } from "node:crypto"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { writeHeapSnapshot } from "node:v8"
import { createTokenBroker, type GrantKey, type GrantRecord, GrantStore, KeyRing } from "@token-broker/core"
import { Duration, Effect, Layer, ManagedRuntime, Redacted } from "effect"

const SUBJECTS = Number(process.argv[2] ?? process.env.BENCH_STORM_SUBJECTS ?? 10_000)
const CAP = Number(process.env.BENCH_STORM_CAP ?? 32)
const PROVIDER = "notes"
const GOAL_BYTES = 10 * 1024

const gc = (globalThis as { gc?: () => void }).gc
if (gc === undefined) throw new Error("run with node --expose-gc")
const heap = () => {
  for (let i = 0; i < 3; i++) gc()
  return process.memoryUsage().heapUsed
}
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** A count that resolves `reached(n)` when it gets to n: every pending call reports where it waits. */
const counter = () => {
  let value = 0
  const wanted: Array<{ n: number; resolve: () => void }> = []
  return {
    get value() {
      return value
    },
    add: () => {
      value += 1
      for (const w of wanted.filter((w) => value >= w.n)) {
        wanted.splice(wanted.indexOf(w), 1)
        w.resolve()
      }
    },
    reached: (n: number) =>
      value >= n ? Promise.resolve() : new Promise<void>((resolve) => wanted.push({ n, resolve }))
  }
}

/**
 * The heap once every call waits (`arrived`, an event), sampled after a GC until three samples in a
 * row agree: what the calls' promises and continuations still settle after they arrived.
 */
const settled = async (arrived: Promise<void>) => {
  await arrived
  let last = 0
  let quiet = 0
  for (let sample = 0; sample < 400; sample++) {
    await pause(25)
    const now = heap()
    quiet = Math.abs(now - last) < Math.max(64 * 1024, now * 0.002) ? quiet + 1 : 0
    last = now
    if (quiet >= 3) return now
  }
  throw new Error("the heap kept changing for 400 samples after every call arrived where it waits")
}

const startEndpoint = async (): Promise<{ child: ChildProcess; url: string }> => {
  const here = dirname(fileURLToPath(import.meta.url))
  const child = spawn(process.execPath, ["--import", "tsx", join(here, "internal", "tokenEndpoint.ts")], {
    stdio: ["pipe", "pipe", "inherit"]
  })
  const port = await new Promise<number>((resolve, reject) => {
    let text = ""
    child.stdout?.on("data", (chunk: Buffer) => {
      text += chunk.toString("utf8")
      const found = /PORT (\d+)/.exec(text)
      if (found !== null) resolve(Number(found[1]))
    })
    child.on("exit", (code) => reject(new Error(`the token endpoint exited (${code})`)))
  })
  return { child, url: `http://127.0.0.1:${port}` }
}

const started = Date.now()
const endpoint = await startEndpoint()
try {
  const material = randomBytes(32).toString("base64")
  const keyRing = KeyRing.layerLocal({
    keys: [Effect.runSync(KeyRing.decodeKey("storm", Redacted.make(material)))]
  })
  // One store for the provisioning and the broker: built here, handed to the broker as a value.
  const setup = ManagedRuntime.make(Layer.mergeAll(GrantStore.layerMemory, keyRing))
  const store = await setup.runPromise(GrantStore.GrantStore)
  const subjects = Array.from({ length: SUBJECTS }, (_, i) => `storm-${String(i).padStart(6, "0")}`)
  const now = Date.now()
  await setup.runPromise(
    Effect.gen(function* () {
      const ring = yield* KeyRing.KeyRing
      const expired = yield* ring.encrypt(
        Redacted.make("expired"),
        KeyRing.aadFor({ tenant: "default", subject: "x", provider: PROVIDER }, "access_token")
      )
      for (const subject of subjects) {
        const key: GrantKey = { tenant: "default", subject, provider: PROVIDER }
        const record: GrantRecord = {
          ...key,
          version: 1,
          status: "active",
          refreshToken: yield* ring.encrypt(
            Redacted.make(randomBytes(24).toString("base64url")),
            KeyRing.aadFor(key, "refresh_token")
          ),
          // expired a second ago (its envelope is never opened: an expired token is not served)
          accessToken: {
            envelope: expired,
            expiresAt: now - 1_000,
            scopes: ["notes:read", "notes:write"],
            audience: null
          },
          scopes: ["notes:read", "notes:write"],
          refreshTokenExpiresAt: null,
          identity: null,
          createdAt: now,
          updatedAt: now,
          lastRefreshedAt: now - 3_600_000,
          lastUsedAt: null,
          failureCount: 0,
          lastErrorCode: null,
          refreshStartedAt: null
        }
        yield* store.insert(record)
      }
    })
  )
  const provisionMs = Date.now() - started

  // Refreshes that reach the upstream step wait here until every call is pending.
  let holding = true
  const held: Array<() => void> = []
  const heldCount = counter()
  const broker = await createTokenBroker({
    store: Layer.succeed(GrantStore.GrantStore, store),
    keyRing,
    providers: [
      {
        id: PROVIDER,
        issuer: endpoint.url,
        discovery: "none",
        endpoints: { authorization: `${endpoint.url}/authorize`, token: `${endpoint.url}/token` },
        identityBinding: "any",
        clientId: "storm",
        clientAuthentication: { method: "client_secret_basic", clientSecret: Redacted.make("storm-secret") },
        redirectUri: `${endpoint.url}/callback`,
        defaultScopes: ["notes:read", "notes:write"],
        allowInsecureRequests: true,
        requestTimeout: Duration.seconds(60)
      }
    ],
    broker: {
      instanceId: "storm-memory",
      maxConcurrentRefreshes: CAP,
      lease: { ttl: Duration.minutes(10), wait: Duration.minutes(10) },
      onRefreshStep: (step) =>
        step !== "before_upstream" || !holding
          ? Effect.void
          : Effect.async<void>((resume) => {
              held.push(() => resume(Effect.void))
              heldCount.add()
            })
    }
  })

  // Both sides are called by the same harness: one promise per call, its outcome kept in a slot.
  const storm = (call: (subject: string) => Promise<{ accessToken: string }>) => {
    const outcomes: Array<string | Error | undefined> = new Array(SUBJECTS)
    const done = Promise.all(
      subjects.map((subject, i) =>
        call(subject).then(
          (token) => {
            outcomes[i] = token.accessToken
          },
          (error: unknown) => {
            outcomes[i] = error instanceof Error ? error : new Error(String(error))
          }
        )
      )
    )
    return { outcomes, done }
  }

  // baseline: pending calls into an async function that only queues its caller
  const waiters: Array<(token: { accessToken: string }) => void> = []
  const waiting = counter()
  const baselineBefore = heap()
  const baseline = storm(
    (_subject) =>
      new Promise((resolve) => {
        waiters.push(resolve)
        waiting.add()
      })
  )
  const baselineAfter = await settled(waiting.reached(SUBJECTS))
  for (const [i, resolve] of waiters.entries()) resolve({ accessToken: `t${i}` })
  await baseline.done
  waiters.length = 0
  const baselineBytes = (baselineAfter - baselineBefore) / SUBJECTS

  // the broker: every call pending, CAP refreshes held, the rest queued behind the cap
  const brokerBefore = heap()
  const calls = storm((subject) => broker.backgroundToken({ subject, provider: PROVIDER }))
  const brokerAfter = await settled(heldCount.reached(Math.min(CAP, SUBJECTS)))
  const heldAtPeak = held.length
  // BENCH_HEAP_SNAPSHOT=file: the heap with every call pending, for Chrome DevTools' memory tab
  if (process.env.BENCH_HEAP_SNAPSHOT) writeHeapSnapshot(process.env.BENCH_HEAP_SNAPSHOT)
  const brokerBytes = (brokerAfter - brokerBefore) / SUBJECTS
  const stormStarted = performance.now()
  holding = false
  for (const resume of held.splice(0)) resume()
  await calls.done
  const wallMs = Math.round(performance.now() - stormStarted)
  const count = (await (await fetch(`${endpoint.url}/count`)).json()) as {
    refreshes: number
    distinct: number
    peak: number
  }
  await broker.close()
  await setup.dispose()

  const failures = calls.outcomes.filter((outcome) => typeof outcome !== "string")
  const tokens = new Set(calls.outcomes.filter((outcome) => typeof outcome === "string"))
  const ok =
    failures.length === 0 &&
    tokens.size === SUBJECTS &&
    count.refreshes === SUBJECTS &&
    count.distinct === SUBJECTS &&
    count.peak <= CAP &&
    heldAtPeak === Math.min(CAP, SUBJECTS)
  const result = {
    name: "refresh-storm-memory",
    subjects: SUBJECTS,
    cap: CAP,
    maxOldSpaceMiB: Number(/--max-old-space-size=(\d+)/.exec(process.execArgv.join(" "))?.[1] ?? 0) || null,
    heapBytesPerPendingCall: Math.round(brokerBytes),
    heapMiBAtPeak: Number((brokerAfter / 2 ** 20).toFixed(1)),
    baseline: { heapBytesPerPendingCall: Math.round(baselineBytes) },
    ratio: Number((brokerBytes / baselineBytes).toFixed(1)),
    goalBytes: GOAL_BYTES,
    served: SUBJECTS - failures.length,
    failures: failures.length,
    firstFailure: failures[0] instanceof Error ? `${failures[0].name}: ${failures[0].message}` : null,
    distinctTokens: tokens.size,
    upstreamRefreshes: count.refreshes,
    peakInFlightUpstream: count.peak,
    wallMsAfterRelease: wallMs,
    provisionSeconds: Number((provisionMs / 1000).toFixed(1)),
    totalSeconds: Math.round((Date.now() - started) / 1000),
    ok
  }
  console.log(
    `refresh storm memory at ${SUBJECTS} pending calls (cap ${CAP}): ${result.heapBytesPerPendingCall} B of heap per ` +
      `pending call (goal <= ${GOAL_BYTES} B), heap ${result.heapMiBAtPeak} MiB at the peak; baseline (a pending call ` +
      `into a function that only queues its caller): ${result.baseline.heapBytesPerPendingCall} B -> x${result.ratio}; ` +
      `then ${result.served}/${SUBJECTS} served in ${wallMs} ms, ${count.refreshes} upstream refreshes ` +
      `(${count.distinct} distinct grants, peak ${count.peak} in flight)`
  )
  console.log(`BENCH_JSON ${JSON.stringify(result)}`)
  if (!ok) {
    console.error(`refresh storm memory FAILED: ${JSON.stringify(result)}`)
    process.exitCode = 1
  }
} finally {
  endpoint.child.kill()
}
