import { randomBytes, randomUUID } from "node:crypto"
import { monitorEventLoopDelay } from "node:perf_hooks"
import {
  AccessTokenCache,
  AuthorizationServer,
  type GrantKey,
  GrantStore,
  KeyRing,
  KeyRotation,
  TokenBroker,
  TokenVerifier
} from "@token-broker/core"
import type { DevIdpUser, Fault } from "@token-broker/dev-idp"
import { SqliteGrantStore } from "@token-broker/storage-sqlite"
import { Clock, Context, Duration, Effect, Exit, Fiber, Layer, Option, Redacted } from "effect"
import { faultyStore, type StoreFaults } from "./FaultyStore.js"
import { makeJumpingClock } from "./JumpingClock.js"
import { type CallSpec, describeStep, type ProviderFault, type Step } from "./Schedule.js"

import {
  claimsOf,
  type Epoch,
  type ExplorerEnv,
  failureOf,
  faultSpec,
  LEASE_TTL_MS,
  LOSES_SUCCESSOR,
  markViolation,
  OUTCOME_UNKNOWN,
  PROVIDER,
  providerConfig,
  type RunOptions,
  reuseViolations,
  rotationViolations,
  type ScheduleOutcome,
  STALL_MS,
  servedViolations
} from "./ScheduleSetup.js"

export { type ExplorerEnv, PROVIDER, type RunOptions, type ScheduleOutcome } from "./ScheduleSetup.js"

let runs = 0

/**
 * Runs one schedule: a fresh grant (Flow 2 through broker 0), then the steps, then a recovery phase
 * (faults cleared, time moved past every expiry, one call per broker), then the invariants (listed, and
 * most of them judged, in ScheduleSetup.ts).
 */
export const runSchedule = (
  env: ExplorerEnv,
  schedule: ReadonlyArray<Step>,
  options: RunOptions
): Promise<ScheduleOutcome> => {
  const run = ++runs
  const user = env.users[run % env.users.length] as DevIdpUser
  const subject = user.sub
  const tenant = `explorer-${run}-${randomUUID().slice(0, 8)}`
  const key: GrantKey = { tenant, subject, provider: PROVIDER }
  const { clock, jump } = makeJumpingClock()
  const idp = env.idp
  const violations: Array<string> = []
  const trace: Array<string> = []

  const program = Effect.gen(function* () {
    yield* Effect.promise(() => idp.revokeGrantOf({ subject }))
    idp.faults.clear()
    idp.reuses.clear()
    idp.rotations.clear()

    const k1 = { kid: "k1", key: Redacted.make(new Uint8Array(randomBytes(32))) }
    const k2 = { kid: "k2", key: Redacted.make(new Uint8Array(randomBytes(32))) }
    const ring = yield* KeyRing.makeLocal({ keys: [k1, k2], current: "k1" })
    const rings = [ring, yield* KeyRing.makeLocal({ keys: [k1, k2], current: "k2" })]
    let nextRing = 1

    const raw = Context.get(
      yield* Layer.build(SqliteGrantStore.layer({ filename: env.filename })),
      GrantStore.GrantStore
    )
    const pauses: Array<string | undefined> = []
    /** A concurrent writer armed at a refresh step of a broker. */
    const writers: Array<{ at: string; run: Effect.Effect<void> } | undefined> = []
    const storeFaults: Array<StoreFaults> = []
    const brokers: Array<TokenBroker.TokenBroker["Type"]> = []
    for (let i = 0; i < options.brokers; i++) {
      writers.push(undefined)
      const own = Context.get(
        yield* Layer.build(SqliteGrantStore.layer({ filename: env.filename })),
        GrantStore.GrantStore
      )
      const faulty = faultyStore(own, options)
      storeFaults.push(faulty.faults)
      pauses.push(undefined)
      const layer = TokenBroker.layer({
        tenant,
        instanceId: `explorer-${run}-b${i}`,
        lease: { ttl: Duration.millis(LEASE_TTL_MS), wait: Duration.seconds(3) },
        retry: { attempts: 3, baseDelay: Duration.millis(5), deadline: Duration.seconds(1) },
        circuit: { failureThreshold: 3, openFor: Duration.seconds(5) },
        onRefreshStep: (step) =>
          Effect.suspend(() => {
            const writer = writers[i]
            if (writer !== undefined && writer.at === step) {
              writers[i] = undefined
              // the writer may wait for this refresh's lease: wait for it at most a stall
              return Effect.asVoid(
                Effect.race(
                  Effect.flatMap(Effect.fork(writer.run), (fiber) => Fiber.await(fiber)),
                  Effect.sleep(Duration.millis(STALL_MS))
                )
              )
            }
            if (pauses[i] !== step) return Effect.void
            pauses[i] = undefined
            return Effect.sleep(Duration.millis(STALL_MS))
          })
      }).pipe(
        Layer.provide(
          Layer.mergeAll(
            Layer.succeed(GrantStore.GrantStore, faulty.store),
            Layer.succeed(KeyRing.KeyRing, ring),
            AuthorizationServer.layer([providerConfig(idp)]),
            AccessTokenCache.layer(),
            TokenVerifier.layer({ issuers: [{ issuer: idp.issuer }], allowInsecureRequests: true })
          )
        )
      )
      brokers.push(Context.get(yield* Layer.build(layer), TokenBroker.TokenBroker))
    }
    const brokerAt = (i: number) => brokers[i] as TokenBroker.TokenBroker["Type"]

    const connect = (broker: TokenBroker.TokenBroker["Type"]) =>
      Effect.gen(function* () {
        const started = yield* broker.startAuthorization({ subject, provider: PROVIDER })
        const callback = yield* Effect.promise(() =>
          idp.driveAuthorization(started.authorizationUrl, {
            username: user.username,
            password: user.password
          })
        )
        return yield* broker.completeAuthorization(callback)
      })
    yield* Effect.orDie(connect(brokerAt(0)))
    const blockMs = options.blockEventLoopMs ?? 0
    if (blockMs > 0) {
      // a stall that outlives every lease renewal (the control of the stall rerun)
      const until = Date.now() + blockMs
      while (Date.now() < until) {
        // blocks the event loop
      }
    }

    // the model the invariants are judged against
    const injected: Array<{ fault: Fault; name: ProviderFault }> = []
    let grantExists = true
    let revokedBy = -1
    let upstreamRevoked = false
    let revokesRun = 0
    const epochs: Array<Epoch> = [
      { startedAt: Date.now(), scopeSets: new Set(), extraAllowed: 0, commitFaults: 0 }
    ]
    const epoch = () => epochs[epochs.length - 1] as Epoch
    const refreshSteps = new Set<string>()

    const call = (spec: CallSpec, label: string) =>
      Effect.gen(function* () {
        const broker = brokerAt(spec.broker)
        const deletedAtStart = !grantExists
        epoch().scopeSets.add(spec.scopes)
        const minTtlMs = spec.minTtlSeconds * 1000
        const exit = yield* Effect.exit(
          broker.backgroundToken({
            subject,
            provider: PROVIDER,
            scopes: spec.scopes === "read" ? ["notes:read"] : undefined,
            minTtl: minTtlMs > 0 ? Duration.millis(minTtlMs) : undefined
          })
        )
        const servedAt = yield* Clock.currentTimeMillis
        const servedReal = Date.now()
        if (Exit.isFailure(exit)) {
          const failure = failureOf(exit.cause)
          if (failure === "defect") violations.push(`${label}: a defect, not a typed error`)
          return failure
        }
        const token = exit.value
        violations.push(
          ...servedViolations({
            where: `${label} (served from ${token.source})`,
            claims: claimsOf(Redacted.value(token.accessToken)),
            subject,
            audience: idp.notesAudience,
            spec,
            expiresAt: token.expiresAt,
            servedAt,
            servedReal,
            revokedBefore: deletedAtStart && (spec.broker === revokedBy || token.source !== "cache")
          })
        )
        return `ok:${token.source}`
      })

    /** `keys rotate` on the store: every grant of this schedule (its tenant) under the other key. */
    const rotateKeys = Effect.suspend(() => {
      const ringNow = rings[nextRing] as KeyRing.KeyRingService
      nextRing = 1 - nextRing
      return KeyRotation.reencryptAll({ filter: { tenant } }).pipe(
        Effect.provideService(GrantStore.GrantStore, raw),
        Effect.provideService(KeyRing.KeyRing, ringNow)
      )
    })

    /**
     * A revoke through a broker; the control of invariant 7 (`revokeLocallyOnly`) instead deletes the
     * grant from the store without telling the provider, as a broker that forgets RFC 7009 would.
     */
    const revokeThrough = (index: number) =>
      options.revokeLocallyOnly === true
        ? Effect.map(raw.delete(key), (removed) => ({ removed }))
        : brokerAt(index).revoke({ subject, provider: PROVIDER })

    const noteConsumed = () => {
      const active = new Set(idp.faults.active().map((a) => a.fault))
      return injected.filter((i) => !active.has(i.fault)).map((i) => i.name)
    }

    for (const [index, step] of schedule.entries()) {
      const label = `step ${index + 1} ${describeStep(step)}`
      let outcome = ""
      switch (step.kind) {
        case "call":
          outcome = yield* call(step.call, label)
          break
        case "race": {
          const all = yield* Effect.all(
            [
              ...step.calls.map((c, n) => call(c, `${label} #${n + 1}`)),
              ...(step.keyRotation
                ? [
                    rotateKeys.pipe(
                      Effect.match({ onFailure: () => "rotate:failed", onSuccess: () => "rotate:ok" })
                    )
                  ]
                : [])
            ],
            { concurrency: "unbounded" }
          )
          outcome = all.join(", ")
          break
        }
        case "advance":
          jump(step.seconds * 1000)
          epochs.push({ startedAt: Date.now(), scopeSets: new Set(), extraAllowed: 0, commitFaults: 0 })
          break
        case "storeFault":
          storeFaults[step.broker]?.failNext(step.op, step.count)
          break
        case "slowRenewal":
          storeFaults[step.broker]?.stallNextRenewal(STALL_MS)
          break
        case "pause":
          pauses[step.broker] = step.at
          refreshSteps.add(step.at)
          break
        case "writerAt": {
          const other = (step.broker + 1) % brokers.length
          const run =
            step.writer === "rotateKeys"
              ? rotateKeys
              : Effect.gen(function* () {
                  upstreamRevoked = upstreamRevoked || grantExists
                  revokesRun += 1
                  yield* Effect.exit(revokeThrough(other))
                  grantExists = Option.isSome(yield* Effect.orDie(raw.get(key)))
                  if (!grantExists) revokedBy = other
                })
          writers[step.broker] = { at: step.at, run: Effect.asVoid(Effect.exit(run)) }
          break
        }
        case "provider":
          injected.push({ fault: idp.faults.inject(faultSpec(step.fault)), name: step.fault })
          if (step.fault.startsWith("commit_then")) epoch().commitFaults += 1
          break
        case "rotateKeys": {
          const result = yield* Effect.exit(rotateKeys)
          outcome = Exit.isSuccess(result) ? "ok" : failureOf(result.cause)
          break
        }
        case "revoke": {
          const broker = brokerAt(step.broker)
          upstreamRevoked = upstreamRevoked || grantExists
          revokesRun += 1
          const result = yield* Effect.exit(revokeThrough(step.broker))
          outcome = Exit.isSuccess(result) ? `removed=${result.value.removed}` : failureOf(result.cause)
          grantExists = Option.isSome(yield* Effect.orDie(raw.get(key)))
          if (!grantExists) revokedBy = step.broker
          if (step.reconsent) {
            const again = yield* Effect.exit(connect(broker))
            outcome += Exit.isSuccess(again)
              ? ", consented again"
              : `, consent failed ${failureOf(again.cause)}`
            grantExists = Option.isSome(yield* Effect.orDie(raw.get(key)))
            if (grantExists) {
              upstreamRevoked = false
              revokedBy = -1
              epoch().extraAllowed += 1
            }
          }
          break
        }
      }
      trace.push(outcome === "" ? label : `${label} -> ${outcome}`)
    }

    // recovery: faults cleared, time past every expiry and circuit, one call per broker
    const consumed = noteConsumed()
    idp.faults.clear()
    for (const f of storeFaults) f.clear()
    for (let i = 0; i < pauses.length; i++) {
      pauses[i] = undefined
      writers[i] = undefined
    }
    jump(600_000)
    epochs.push({ startedAt: Date.now(), scopeSets: new Set(), extraAllowed: 0, commitFaults: 0 })
    const physicalLoss = consumed.some((name) => LOSES_SUCCESSOR.has(name))
    const outcomeUnknown = consumed.some((name) => OUTCOME_UNKNOWN.has(name))
    const refusedByFault = consumed.includes("invalid_grant")
    const finals: Array<string> = []
    for (let i = 0; i < brokers.length; i++) {
      finals.push(yield* call({ broker: i, scopes: "all", minTtlSeconds: 0 }, `recovery b${i}.token(all)`))
    }
    trace.push(`recovery: ${finals.map((f, i) => `b${i} ${f}`).join(", ")}`)
    const rotations = idp.rotations.list().filter((r) => r.subject === subject)
    const reuses = idp.reuses.list().filter((r) => r.subject === subject)
    const final = yield* Effect.orDie(raw.get(key))

    // 6: active (and its stored refresh token still refreshes) or honestly marked
    if (Option.isNone(final)) {
      if (grantExists) violations.push("the grant vanished without a revoke")
    } else if (final.value.status === "active") {
      const probe = yield* Effect.exit(brokerAt(0).rotateRefreshToken({ subject, provider: PROVIDER }))
      if (Exit.isFailure(probe)) {
        violations.push(
          `the grant reads active, but its stored refresh token no longer refreshes (${failureOf(probe.cause)})`
        )
      }
    } else {
      const marked = markViolation(final.value.status, final.value.lastErrorCode, {
        physicalLoss,
        outcomeUnknown,
        refusedByProvider: refusedByFault || upstreamRevoked
      })
      if (marked !== undefined) violations.push(marked)
    }
    const live = idp.liveRefreshTokens({ subject })
    const reuseCounts = reuseViolations(reuses, {
      physicalLoss,
      revokesRun,
      grantRemoved: Option.isNone(final),
      live
    })
    violations.push(...reuseCounts.violations)
    const { refreshReuses, revocationReuses } = reuseCounts
    // 5: every broker recovered
    finals.forEach((f, i) => {
      const healthy =
        f.startsWith("ok") ||
        (f.startsWith("ConsentRequired") && (Option.isNone(final) || final.value.status !== "active"))
      if (!healthy) violations.push(`recovery: broker b${i} answered ${f} after every fault was cleared`)
    })
    // 4: rotations per access-token lifetime (each epoch starts with a clock jump past every token)
    violations.push(...rotationViolations(epochs, rotations))
    trace.push(
      `end: grant ${Option.match(final, { onNone: () => "none", onSome: (g) => `${g.status}${g.lastErrorCode === null ? "" : ` (${g.lastErrorCode})`} v${g.version}` })}; ${rotations.length} rotation(s), ${refreshReuses} reuse(s) at refresh and ${revocationReuses} at revocation, ${live} live refresh token(s); provider faults consumed: ${consumed.join(", ") || "none"}`
    )
  })

  const loopDelay = monitorEventLoopDelay({ resolution: 10 })
  loopDelay.enable()
  return Effect.runPromise(
    program.pipe(
      Effect.scoped,
      Effect.withClock(clock),
      Effect.catchAllDefect((defect) =>
        Effect.sync(() => {
          violations.push(
            `the schedule could not run: ${defect instanceof Error ? defect.message : "defect"}`
          )
        })
      ),
      Effect.ensuring(Effect.sync(() => loopDelay.disable())),
      Effect.map(() => ({ violations, trace, stalledMs: Math.round(loopDelay.max / 1e6) }))
    )
  )
}
