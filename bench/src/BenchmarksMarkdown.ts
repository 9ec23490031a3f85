/**
 * `BENCHMARKS.md` from one `pnpm bench` run (`bench/results/latest.json`): the machine, the command,
 * one table with every figure, its baseline measured in the same run and the ratio, then the details,
 * the security checks and where they live, and the last chaos run when there is one.
 */

type Json = Record<string, unknown>

interface Latest {
  readonly date: string
  readonly command: string
  readonly machine: Json
  readonly totalSeconds: number
  readonly steps: ReadonlyArray<{
    readonly id: string
    readonly command: string
    readonly exitCode: number | null
    readonly seconds: number
    readonly json: ReadonlyArray<Json>
  }>
  readonly storage: unknown
  readonly chaos: unknown
}

interface Row {
  readonly bench: string
  readonly figure: string
  readonly value: string
  readonly baseline: string
  readonly ratio: string
  /** What the ratio means ("lower is better", ...). */
  readonly note: string
}

const num = (value: unknown): number => (typeof value === "number" ? value : Number.NaN)
const obj = (value: unknown): Json => (typeof value === "object" && value !== null ? (value as Json) : {})
const arr = (value: unknown): ReadonlyArray<Json> => (Array.isArray(value) ? (value as Array<Json>) : [])
const fmt = (value: number, digits = 0) =>
  Number.isFinite(value) ? value.toLocaleString("en-US", { maximumFractionDigits: digits }) : "n/a"
const ratio = (value: number) => (Number.isFinite(value) ? `${fmt(value, 2)}x` : "n/a")

const coreRows = (json: Json): Array<Row> => {
  const results = arr(json.results)
  const byName = new Map(results.map((r) => [String(r.name), r]))
  return results.flatMap((r) => {
    const baseline = byName.get(String(r.baseline))
    if (baseline === undefined) return []
    const spread = arr(r.ratioSpread).map((v) => num(v))
    return [
      {
        bench: "core cache hit",
        figure: `${String(r.name)}`,
        value: `${fmt(num(r.opsPerSecond))} ops/s (${fmt(num(r.microsPerOp), 2)} us/op)`,
        baseline: `${String(baseline.name)}: ${fmt(num(baseline.opsPerSecond))} ops/s`,
        ratio: `${ratio(num(r.ratioToBaseline))} (rounds ${spread.map((v) => fmt(v, 2)).join("-")})`,
        note: `time per call / baseline's, median of ${fmt(num(json.rounds))} alternating rounds`
      }
    ]
  })
}

const spreadOf = (values: unknown) => {
  const [low, high] = arr(values).map((v) => num(v))
  return low === undefined || high === undefined ? "" : ` (rounds ${fmt(low, 2)}-${fmt(high, 2)})`
}

/** A server's throughput and p99 rows against its baseline's (`run`: the rounds, connections and seconds). */
const loadRows = (
  bench: string,
  what: string,
  server: Json,
  bare: Json,
  baseline: readonly [throughput: string, latency: string],
  figures: Json,
  run: Json
): Array<Row> => [
  {
    bench,
    figure: `${what}: requests/s`,
    value: `${fmt(num(server.rps))} req/s`,
    baseline: `${baseline[0]}: ${fmt(num(bare.rps))} req/s`,
    ratio: `${ratio(num(figures.ratio))}${spreadOf(figures.ratioSpread)}`,
    note: `throughput / baseline's, median of ${String(run.rounds)} alternating rounds (${String(run.connections)} connections, ${String(run.seconds)} s each)`
  },
  {
    bench,
    figure: `${what}: p99 latency`,
    value: `${fmt(num(server.p99ms))} ms`,
    baseline: `${baseline[1]}: ${fmt(num(bare.p99ms))} ms`,
    ratio: `${ratio(num(figures.p99Ratio))}${spreadOf(figures.p99RatioSpread)}`,
    note: "latency / baseline's, median of the rounds"
  }
]

const brokerRows = (json: Json): Array<Row> => {
  const routeRows = (route: Json, what: string): Array<Row> =>
    loadRows(
      "HTTP broker",
      what,
      obj(route.broker),
      obj(route.bare),
      ["bare fastify, same body size", "bare fastify"],
      route,
      json
    )
  return [
    ...routeRows(json, "background token, cache hit"),
    ...(json.exchange === undefined
      ? []
      : routeRows(obj(json.exchange), "token exchange (/oauth/token), cached session token"))
  ]
}

const mcpRows = (json: Json): Array<Row> => {
  const what = `tools/call ${String(json.tool)} (${fmt(num(json.notes))} notes), cached upstream token (${String(json.tokenSource ?? "remote")} broker)`
  const [mcp, bare] = [obj(json.mcp), obj(json.bare)]
  return [
    ...loadRows(
      "MCP server",
      what,
      mcp,
      bare,
      ["MCP SDK server, no auth, the list in memory", "MCP SDK server"],
      json,
      json
    ),
    {
      bench: "MCP server",
      figure: `${what}: CPU time of the server's process per call`,
      value: `${fmt(num(mcp.cpuMsPerCall), 2)} ms`,
      baseline: `MCP SDK server: ${fmt(num(bare.cpuMsPerCall), 2)} ms`,
      ratio: `${ratio(num(json.cpuRatio))}${spreadOf(json.cpuRatioSpread)}`,
      note: "CPU per call / baseline's (from /proc), median of the rounds; lower is better"
    }
  ]
}

const storageRows = (storage: Json): Array<Row> => {
  const grants = obj(storage.grants)
  return arr(storage.results).flatMap((result) => {
    const phases = arr(result.phases)
    const base = phases[0]
    const full = phases[phases.length - 1]
    if (base === undefined || full === undefined || base === full) return []
    return (["get", "compareAndSet"] as const).flatMap((op) =>
      (["p50Us", "p99Us"] as const).map((stat) => ({
        bench: `storage (${String(result.backend)})`,
        figure: `${op} ${stat.slice(0, 3)} at ${fmt(num(grants.full))} grants`,
        value: `${fmt(num(obj(full[op])[stat]), 1)} us`,
        baseline: `at ${fmt(num(grants.baseline))} grants: ${fmt(num(obj(base[op])[stat]), 1)} us`,
        ratio: ratio(num(obj(full[op])[stat]) / num(obj(base[op])[stat])),
        note: "latency / baseline's"
      }))
    )
  })
}

const stormRows = (json: Json): Array<Row> => {
  const baseline = obj(json.baseline)
  const single = num(baseline.singleRefreshMedianMs)
  const base = `one refresh alone: ${fmt(single)} ms`
  const subjects = fmt(num(json.subjects))
  return [
    {
      bench: "refresh storm",
      figure: `${subjects} subjects expiring at once: served`,
      value: `${fmt(num(json.served))} / ${subjects}, ${fmt(num(json.refreshRequests))} refresh requests at dev-idp`,
      baseline: "one refresh per grant",
      ratio: ratio(num(json.refreshRequests) / num(json.subjects)),
      note: "refreshes per grant (must be 1)"
    },
    {
      bench: "refresh storm",
      figure: "peak refreshes in flight at dev-idp",
      value: fmt(num(json.peakInFlightAtDevIdp)),
      baseline: `the cap (maxConcurrentRefreshes): ${fmt(num(json.cap))}`,
      ratio: ratio(num(json.peakInFlightAtDevIdp) / num(json.cap)),
      note: "peak / cap (must be <= 1)"
    },
    ...(["p50Ms", "p99Ms"] as const).map((stat) => ({
      bench: "refresh storm",
      figure: `call latency ${stat.slice(0, 3)}`,
      value: `${fmt(num(json[stat]))} ms`,
      baseline: base,
      ratio: ratio(num(json[stat]) / single),
      note: "queueing behind the cap"
    })),
    {
      bench: "refresh storm",
      figure: "refreshes per second",
      value: `${fmt(num(json.refreshesPerSecond))} /s (wall ${fmt(num(json.wallMs) / 1000, 1)} s)`,
      baseline: `one at a time: ${fmt(1000 / single, 1)} /s`,
      ratio: ratio(num(obj(json.ratios).throughput)),
      note: "throughput / baseline's"
    }
  ]
}

const stormMemoryRows = (json: Json): Array<Row> => {
  const subjects = fmt(num(json.subjects))
  const capped = json.maxOldSpaceMiB === null ? "" : ` (heap capped at ${fmt(num(json.maxOldSpaceMiB))} MiB)`
  return [
    {
      bench: "refresh storm memory",
      figure: `heap per pending call, ${subjects} calls pending behind the cap${capped}`,
      value: `${fmt(num(json.heapBytesPerPendingCall))} B (goal <= ${fmt(num(json.goalBytes))} B; ${fmt(num(json.heapMiBAtPeak), 1)} MiB heap at the peak)`,
      baseline: `a pending call into a function that only queues its caller: ${fmt(num(obj(json.baseline).heapBytesPerPendingCall))} B`,
      ratio: ratio(num(json.ratio)),
      note: `heap / baseline's; then ${fmt(num(json.served))} / ${subjects} served, ${fmt(num(json.upstreamRefreshes))} upstream refreshes`
    }
  ]
}

const memoryRows = (json: Json): Array<Row> => [
  {
    bench: "memory",
    figure: `per cached token at ${fmt(num(json.subjects))} subjects (${fmt(num(json.tokenChars))}-char tokens)`,
    value: `${fmt(num(json.cacheBytesPerToken))} B (${fmt(num(json.cacheOverheadBytes))} B on top of key + token)`,
    baseline: `plain Map of the same strings: ${fmt(num(json.baselineBytesPerToken))} B`,
    ratio: ratio(num(json.ratio)),
    note: "heap / baseline's"
  }
]

const cliRows = (json: Json): Array<Row> => [
  {
    bench: "CLI start-up",
    figure: "`token-broker --help`, mean",
    value: `${fmt(num(json.cliHelpMeanMs))} ms (median ${fmt(num(json.cliHelpMedianMs))} ms, ${fmt(num(json.runs))} runs)`,
    baseline: `node -e 0: ${fmt(num(json.nodeBareMeanMs))} ms`,
    ratio: ratio(num(json.ratio)),
    note: "time / baseline's (the help recorded at build time, the CLI not loaded)"
  },
  {
    bench: "CLI start-up",
    figure: "`token-broker keys --help` (the whole CLI loaded, as for every command), mean",
    value: `${fmt(num(json.wholeCliMeanMs))} ms`,
    baseline: `node -e 0: ${fmt(num(json.nodeBareMeanMs))} ms`,
    ratio: ratio(num(json.wholeCliRatio)),
    note: "time / baseline's"
  }
]

const callerSecretRows = (json: Json): Array<Row> =>
  arr(json.results)
    .filter((r) => r.name !== "right secret")
    .map((r) => ({
      bench: "caller secret verification",
      figure: `\`verifySecret\`: ${String(r.name)}, median of ${fmt(num(json.rounds))} rounds`,
      value: `${fmt(num(r.medianMs), 2)} ms`,
      baseline: `the right secret: ${fmt(num(json.baselineMs), 2)} ms`,
      ratio: ratio(num(r.ratio)),
      note: "time / the right secret's (1.00x: no dependence on the candidate)"
    }))

const rowsOf = (latest: Latest): Array<Row> =>
  latest.steps.flatMap((step) =>
    step.json.flatMap((json): Array<Row> => {
      const name = String(json.benchmark ?? json.name ?? "")
      if (name === "core-cache-hit") return coreRows(json)
      if (name.startsWith("broker-http")) return brokerRows(json)
      if (name === "mcp-server-tools-call") return mcpRows(json)
      if (name === "refresh-storm") return stormRows(json)
      if (name === "memory-per-cached-token") return memoryRows(json)
      if (name === "refresh-storm-memory") return stormMemoryRows(json)
      if (name === "cli-startup") return cliRows(json)
      if (name === "caller-secret-verify") return callerSecretRows(json)
      return []
    })
  )

/** Where the time and memory go, from the profiles behind the figures (kept by hand, with their commands). */
const PROFILES = `## Where the time and memory go (profiles)

- **refresh storm memory** (heap snapshot with every call pending:
  \`BENCH_HEAP_SNAPSHOT=/tmp/storm.heapsnapshot node --expose-gc --import tsx src/stormMemory.ts 2000\` in
  \`bench/\`, opened in Chrome DevTools or summed by constructor). Before (commit b267b16): 34,747 B per
  pending call at 10,000 calls (baseline 514 B, 67.6x; 373 MiB heap at the peak). Each pending call held
  two fibers - the caller's \`runPromise\` fiber and the single flight's forked refresh fiber, parked in
  the cap's permit queue after its store read - with the refresh's whole pipeline on its stack (about 82
  \`EffectPrimitive\`s, 122 closure contexts, 128 closures, 7 generators, a span with its captured call
  sites, the grant record it had read). Moving the cap's slot to the start of the refresh, still in the
  forked fiber, gave 25.7 KB (at 2,000): the parked fiber tree itself was the cost. After: the single flight
  forks a grant's refresh only once the provider's cap admits it; until then the flight is a \`Deferred\`
  and a callback in the permit queue (\`permits.admit\`), and its run is built when admitted. 9,318 B per
  pending call at 10,000 (baseline 538 B, 17.3x; 130.7 MiB at the peak); the snapshot shows one fiber per
  call (2,130 \`FiberRuntime\`s for 2,000 calls), 22 \`EffectPrimitive\`s, 43 contexts and 3 generators
  per call. What remains is the caller's own fiber (facade \`runPromiseExit\` -> \`backgroundToken\`'s
  \`Effect.gen\` -> \`flights.run\` -> \`Deferred.await\`); going further means joining the flight's
  \`Deferred\` by callback from the Promise facade on a miss, with no fiber per caller. The slot of the cap
  now covers the store read and the shared-token check as well as the refresh: a queued grant reads
  nothing until admitted.
- **core cache hit** (CPU profile of the Promise facade's hits alone:
  \`BENCH_ONLY="Promise facade" node --cpu-prof --cpu-prof-dir=/tmp/prof-facade --import tsx bench/cache-hit.ts\`
  then \`npx tsx bench/profile-summary.ts /tmp/prof-facade\` in \`packages/core/\`, which sums self time over the
  measured loops only). Before (commit eac005c; 0.52 us/op in that run, on a machine shared under load): the
  clock read was a quarter of the hit (\`Clock.unsafeCurrentTimeMillis\`, i.e. \`Date.now()\`, 25.7 % of the
  samples), then \`Redacted.value\` 6.3 %, the hit counter 9.5 % (its label array by provider, the metric's
  hook by label array in a WeakMap, the update), the garbage collector 9.6 % (two answer objects per hit:
  the \`IssuedToken\` and the \`PlainToken\`), the cache lookup 4.5 %; the rest is the caller's loop and its
  awaits (28.7 % plus 13.4 % in \`runMicrotasks\`), which the baseline pays too. Side by side in one run, 2.13x
  the async Map lookup (rounds 1.84-2.78). After: the facade checks a hit against a coarse upper bound of
  the runtime's clock - one reading serves at most 64 hits and at most 100 ms (an unref'd timer, armed
  only while hits happen, ends its window), plus those 100 ms, so while the event loop turns the check
  never assumes an earlier time than the real one; the last 100 ms before a token's early refresh (or its
  \`minTtl\`) go to the runtime's exact path instead. A synchronous stretch that never yields keeps a
  reading for at most 64 hits. A hit answers one frozen \`PlainToken\` per cache entry (a WeakMap read)
  and counts with the counter hook of its provider's label set, resolved once. 0.26 us/op in the same
  profile: the clock 0.6 %, the hit counter 5.5 %, the garbage collector 8.3 %; the caller's loop and
  awaits 49.9 %. The bench gives 1.42x-1.58x (medians of three runs, load average 16-27); the Effect API,
  which keeps reading Effect's \`Clock\` on every hit, stays at 1.19x-1.42x.
- **HTTP broker, background token** (cache hit; \`BENCH_PROFILE=/tmp/prof npx tsx bench/http.ts\` in
  \`apps/broker/\`: the broker and the bare servers run with \`--cpu-prof\`, and the summary by route of
  bench/cpuProfile.ts is printed; figures in microseconds of sampled time per request on a shared 2-core
  machine, so inflated alike for both servers). Before (commit eac005c): 124 us per request, bare fastify
  48 us; CPU from /proc 91 us against 47 us, bare / broker 0.38, req/s ratio 0.40. Where it went: the
  socket write 47 us (bare 28: it also takes the preemptions that land at the syscall's return, more
  often for the process that works more), caller authentication 15 us (decoding the Basic header 4 us,
  its SHA-256 3 us, closures made per request 3 us, the async hook's promise), the HTTP metrics 7 us
  (prom-client hashes the label set on every update), zod on params and body 4 us, the handler 5 us (the
  token view 3 us), JSON.stringify 5 us, the rate limiter 3 us, the request id 1 us; logging below
  \`info\` costs the lazy request logger only (0.4 us: fastify's factory call; no child is made). After
  (commit 62d9f2d): 81 us, bare 34 us; CPU 99 us against 53 us, 0.55; req/s ratio 0.58 (rounds
  0.30-0.73), p99 2.2x (rounds 1.7-3.9). A Basic header that authenticated before is one digest of the
  header and a Map read in a callback hook (4 us with the digest), the metrics a Map read and three
  increments rendered at scrape time (0.6 us, same names, labels and buckets); zod 2.5 us, the handler
  4 us, JSON 4 us, the rate limiter 1.2 us and fastify's own hooks and routing are what remains, with
  the socket write (40 us) the largest part. At \`info\`, fastify's access log (a line per request
  and per response) makes the request's pino child and serializes both lines; the bench runs at \`warn\`
  and does not measure that. After (commit d227137; the machine more loaded, bare fastify now 67 us
  sampled): 124 us against 67 us, 0.55; CPU 85 us against 59 us, 0.51 (rounds 0.46-0.78); req/s ratio
  0.57 (rounds 0.53-0.88), p99 1.2x. zod is off the hit (a plainly valid path and an absent body are
  checked in place, anything else goes to zod: 3.7 us to 0), the expiry's ISO string is formatted once
  per token (3.7 us to under 0.5), a remembered caller no longer touches the request logger below
  \`debug\`; the broker's own code is 12.6 us. What remains is fastify (9.5 us), the caller header's
  digest (3.8 us), JSON.stringify of the answer (7 us, bare's serializer 4), the rate limiter (2.6 us)
  and the socket write (46 us against 38 us): the 0.7x goal is not reached.
- **HTTP broker, token exchange** (cached session token; same command). Before (commit eac005c): 416 us
  per request, bare fastify parsing the same form 80 us; CPU from /proc 448 us against 77 us, bare /
  broker 0.17, req/s ratio 0.16. Where it went: two runs through the runtime (verify, then
  \`sessionToken\`) 140 us - two fibers, \`Effect.gen\`, and \`withSpan\` capturing a stack trace per
  call (37 us with the span itself) - plus 23 us of GC; the subject token hashed three times through
  hash objects (the route's verify, core's verify, the session id: 18 us) and tested against the JWT
  shape regex (3 us); the answer serialized through zod 13 us; caller authentication 19 us; the form
  checks and zod's form parse 15 us; the HTTP metrics 8 us. After (commit 62d9f2d): 194 us, bare 72 us;
  CPU 164 us against 50 us, 0.34; req/s ratio 0.40 (rounds 0.37-1.06), p99 2.5x. The route runs the
  verification, the caller's subject-token policy and \`sessionToken\` as one effect (23 us for the whole
  run); the token is hashed once per request (one-shot SHA-256, shared by the verifier's memo and the
  session cache through the \`Redacted\` instance: 6 us with the caller's header digest); a remembered
  verification skips the shape regex; \`sessionToken\` checks provider and scopes in place and enters
  its span and single flight on a miss only; the form is read in one pass; the answer is
  JSON.stringify (5 us). What remains above bare: the one fiber per request (about 20 us; a synchronous
  \`cachedSessionToken\` beside \`cachedToken\` on TokenBrokerService would remove it), the handler's
  own checks (13 us), the rate limiter (4 us), and the socket write (68 us against 33 us). After (commits
  e7e7f23, d227137; bare now 87 us sampled under more load): 183 us against 87 us, 0.48; CPU 151 us
  against 69 us, 0.46 (rounds 0.43-0.53; 0.51 in another run); req/s ratio 0.52 (rounds 0.44-0.57;
  0.63 in another run), p99 1.6x. A repeat exchange is answered without the runtime: the verifier's
  \`remembered\` (its memo, its clock) and the caller's subject-token policy in the route, then
  core's \`cachedSessionToken\` (the memo checked again, the cache read, the cached count); anything
  else runs the effect as before. Effect is 2.1 us (\`Redacted.make\`), core 4.6 us (the metric's label
  key no longer built from arrays: 3.5 us to under 1); the handler's checks 14 us and the socket write
  (59 us) remain.
- **MCP server tools/call** (CPU profile of the MCP server process under the load, remote broker:
  \`BENCH_PROFILE=/tmp/mcp-prof BENCH_ROUNDS=2 pnpm --filter @token-broker/mcp-server bench\`, only the
  seconds it was loaded; 2026-12-03). Before: 5.0 ms of CPU a call against 0.45 ms for the bare SDK
  server (10.9x, ratio 0.11x). 17% socket writes, of which 7.5 points were undici's \`fetch\` writing
  each upstream request's headers and body apart (a string body becomes a stream, \`writeIterable\`);
  \`fetch\`'s own machinery (WHATWG Request/Response, web streams, an AbortSignal cloned each time,
  \`makeTransferable\`) 25% across Node's undici and the bundled one, Effect's runtime 9% (two
  \`runPromiseExit\` per tool call), GC 7%, zod 6%; the bearer check does not show. Fixed: the notes API
  is called with \`undici.request\` on one kept-alive Agent, the remote broker through a \`fetch\` the app
  hands its client over \`undici.request\` on another (\`src/internal/keptAliveFetch.ts\`), and the
  upstream token and the API call are one Effect run per tool call. After, same command: 2.2 ms against
  0.35 ms (6.2x, ratio 0.17x); what is left is the SDK's own SSE answer (headers flushed apart from the
  body, which the baseline pays too), one write per upstream request, Effect 10% (the bearer check's run
  and the tool's), GC 8% and zod 6% (the notes answer's 20 notes, the tool's output schema). Without the
  profiler (\`pnpm --filter @token-broker/mcp-server bench\`, 3 rounds, 32 connections, load average 11):
  main 4.07 ms against 0.37 ms a call (10.9x, rounds 7.6-11.7), ratio 0.07x (0.05-0.13); now 2.11 ms
  against 0.41 ms (5.5x, rounds 3.6-6.4), ratio 0.15x (0.15-0.19). The 0.5x goal is not reached: each
  call still waits on two other processes (the broker's token answer and dev-idp's notes API) that the
  baseline does not call, on a machine shared with other work; the broker's own CPU per answer is not
  counted here.
`

const SECURITY = `## Security checks (all in \`pnpm test\`)

| check | where |
| --- | --- |
| no secret of a run in its logs: the HTTP broker's end-to-end suite (SQLite and PostgreSQL) and its whole-flow test run at debug level, and their captured log lines are scanned (\`@token-broker/secret-scan\`) for every secret the run handled - caller secrets, client secrets, the key (as text and as bytes), passwords, the metrics token, user and ID tokens, every access token served, each consent's PKCE code verifier, nonce, code and state (read from its pending record), and every stored grant's refresh and access tokens (decrypted through a second connection to the same store with the same key ring) - each found raw, URL-encoded, form-encoded, as base64 and base64url at every byte alignment, as hex, and as any 12-character piece; plus any \`Bearer\`/\`basic\` credential (any case), \`refresh_token=\`/\`client_secret=\` value and JWT-shaped string. The MCP server's end-to-end suite (in-process and remote token source) scans both servers' logs and the broker process's output the same way. The scanner's control test catches one sample per class and passes a realistic clean log; each suite also fails on a secret planted into its real logs | \`tooling/secret-scan/test/SecretScan.test.ts\` (the control), \`apps/broker/test/e2e.test.ts\` ("the whole suite's debug logs hold no secret of the run"), \`apps/broker/test/operations.test.ts\`, \`apps/mcp-server/test/*.e2e.test.ts\` ("never logs a secret of the run") |
| no secret in anything the chaos suite's broker processes printed: the same scan over every worker's stdout and stderr, for each worker's client secret and keys, every access token a worker reported, and each provisioner's consents (password, PKCE verifier, nonce, code, state) and stored refresh and access tokens as the scenario ends (refresh tokens rotated away during a scenario are not on the list) | \`bench/chaos/run.ts\` (the last row of its table; \`pnpm chaos\`, and its short version in \`pnpm test\`); its control: \`bench/test/chaosDetectors.test.ts\` |
| caller-secret verification refuses, without throwing, a wrong secret of every length from 0 to twice the secret's and of 10,000 characters, a secret differing in one byte at any position (the last one too), a stored digest truncated to 1-31 bytes, extended by a byte, or changed in its first or last byte, a malformed hash and absurd scrypt parameters; a genuine 48-byte digest verifies and is refused when only its last byte changes (the candidate is derived to the stored digest's length and compared over all of it). Whether its cost depends on the candidate is measured, never asserted: \`pnpm --filter @token-broker/config bench\` prints each kind of candidate's median time as a ratio of the right secret's (\`pnpm bench\` adds them to the table as "caller secret verification") | \`packages/config/test/CallerSecret.test.ts\`; the ratios: \`packages/config/bench/callerSecret.ts\` |
| providers must use https unless \`allowInsecureRequests\` is set (issuer, internal base URL, session-token issuers, config file) | \`packages/core/test/AuthorizationServer.test.ts\`, \`packages/core/test/TokenVerifier.test.ts\`, \`packages/config/test/Config.test.ts\` |
| property-based test (fast-check) of every route with requests seeded with a real grant (a consent through dev-idp) and a real subject token: no 5xx, a clear message on every refusal, no 2xx from a caller route without valid caller credentials, and the requests with valid credentials see 200, 400, 403, 404 and 409 | \`apps/broker/test/fuzz.test.ts\` (350 runs) |
| a record copied between subjects in the store does not decrypt (DecryptionFailed, never the other subject's token): one row's encrypted data copied with SQL onto another subject's row in SQLite and PostgreSQL, then asked for through a broker process; separately, a KeyRing-only check that an envelope does not decrypt under another subject's AAD (no store involved) | \`bench/test/security.test.ts\` (the store copy); \`packages/core/test/TokenBroker.consent.test.ts\` (the KeyRing check) |
`

const chaosSection = (chaos: unknown): string => {
  const json = obj(chaos)
  const rows = arr(json.rows)
  if (rows.length === 0)
    return "## Chaos suite\n\n`pnpm chaos` (no run recorded in `bench/results/chaos.json` yet).\n"
  const lines = rows.map(
    (row) =>
      `| ${String(row.scenario)} | ${String(row.backend)} | ${String(row.runs)} | ${num(row.lost) === 0 ? "0" : `${String(row.lost)} (${String(row.unavoidable)} unavoidable, reported as rotation_lost)`} | ${String(row.wrongTokens)} | ${row.ok === true ? "PASS" : "FAIL"} ${String(row.outcome).replaceAll("|", "/")} |`
  )
  return `## Chaos suite (last run: \`${String(json.command)}\`, ${String(json.date)}, ${String(json.seconds)} s)

Real processes: broker workers (SIGKILL, SIGSTOP), dev-idp with rotation and reuse detection, SQLite files,
PostgreSQL (a fresh schema on the shared server; a private cluster for the restart). What each scenario does: the comment at the top of its file in \`bench/chaos/\`.

| scenario | backend | runs | grants lost | wrong tokens | outcome |
| --- | --- | --- | --- | --- | --- |
${lines.join("\n")}
`
}

const stormSubjects = (latest: Latest): string => {
  const storm = latest.steps.flatMap((step) => step.json).find((json) => json.name === "refresh-storm")
  return storm === undefined ? "not run" : fmt(num(storm.subjects))
}

export const renderBenchmarks = (latest: Latest): string => {
  const machine = latest.machine
  const rows = [...rowsOf(latest), ...storageRows(obj(latest.storage))]
  const failed = latest.steps.filter((step) => step.exitCode !== 0)
  const missing = [
    "core-cache-hit",
    "broker-http",
    "mcp-server-tools-call",
    "refresh-storm",
    "memory-per-cached-token",
    "cli-startup",
    "caller-secret-verify"
  ].filter(
    (name) =>
      !latest.steps.some((step) =>
        step.json.some((json) => String(json.benchmark ?? json.name ?? "").startsWith(name))
      )
  )
  const table = rows
    .map((r) => `| ${r.bench} | ${r.figure} | ${r.value} | ${r.baseline} | **${r.ratio}** | ${r.note} |`)
    .join("\n")
  const steps = latest.steps
    .map(
      (step) =>
        `| ${step.id} | \`${step.command}\` | ${step.seconds} s | ${step.exitCode === 0 ? "ok" : `exit ${String(step.exitCode)}`} |`
    )
    .join("\n")
  const storage = obj(latest.storage)
  return `# Benchmarks

Written by \`${latest.command}\` from one run (${latest.date}, ${latest.totalSeconds} s); the raw figures are in
\`bench/results/latest.json\`. Every figure is set against a baseline measured in the same run on the same
machine, and the ratio is what to compare between machines - absolute numbers are this machine's.

Machine: ${String(machine.cpus)} x ${String(machine.cpu)}, ${String(machine.memoryGiB)} GiB memory,
Node.js ${String(machine.node)}, ${String(machine.platform)}. Command: \`${latest.command}\` from the repository root.
${failed.length === 0 ? "" : `\n**Failed in this run:** ${failed.map((s) => `${s.id} (exit ${String(s.exitCode)})`).join(", ")}.\n`}${missing.length === 0 ? "" : `\n**No figures in this run from:** ${missing.join(", ")}.\n`}
| benchmark | figure | value | baseline (same run) | ratio | ratio means |
| --- | --- | --- | --- | --- | --- |
${table}

## What each benchmark does

- **core cache hit** (\`packages/core/bench/cache-hit.ts\`): \`backgroundToken\` on a cached token (checked
  to be a hit before and after), through the Promise facade and one \`runPromise\` per call against an async
  function around a \`Map\` lookup, and through the Effect API inside one program against an \`Effect.sync\`
  around a \`Map\` lookup in the same runtime; every candidate runs once per round, rounds alternate the
  order, and each ratio is the median of the rounds' ratios with their spread. dev-idp runs in a process of
  its own (its AsyncLocalStorage would put async hooks on every promise of the measuring process). A hit
  reads the clock once: on this machine \`Date.now()\` alone costs about 0.1 us, more than the async
  baseline's whole call.
- **HTTP broker** (\`apps/broker/bench/http.ts\`): \`POST /v1/grants/{subject}/{provider}/token\` on a cache hit
  (caller authentication, policy, validation, cache, JSON) against a bare fastify route answering a JSON body
  of the same size. The broker (from its entry point and a config file), the bare server, dev-idp and each
  autocannon run are processes of their own; rounds alternate which server goes first, and the ratios are
  medians of the rounds' ratios with their spread. The run fails when a request fails or when the broker's
  own \`token_requests_total\` counts anything but hits during the measurement. The same for the RFC 8693
  exchange at \`/oauth/token\` with one user's subject token (a cached session token: every request must
  count as \`token_exchange_total{outcome="cached"}\`), against a bare route that receives and parses the
  same form body.
- **MCP server** (\`apps/mcp-server/bench/toolsCall.ts\`): \`tools/call notes_list\` in one MCP session
  (Streamable HTTP, a JSON-RPC id per request) against a minimal \`@modelcontextprotocol/sdk\` server with
  no authentication whose \`notes_list\` answers the same notes from memory (the answers are checked to
  be equal). The MCP server does its whole work on every call: it verifies the user's bearer token, gets
  the upstream token from the HTTP broker (\`tokenSource: remote\`, a cache hit there) and calls dev-idp's
  notes API with it - two HTTP calls the baseline, as issue 15 defines it, does not make. The MCP server
  (its built bundle, as deployed), the broker, the baseline, dev-idp and each load run (autocannon's API)
  are processes of their own; rounds alternate, ratios are medians of the rounds' ratios with their
  spread; each server process's CPU time per call is read from /proc around each run. The run fails when
  a request fails, an answer is an error, or the broker's \`token_requests_total\` counts anything but hits.
- **storage** (\`bench/src/storage.ts\`): \`get\` and \`compareAndSet\` through each store's driver at
  ${fmt(num(obj(storage.grants).full))} grants against the same at ${fmt(num(obj(storage.grants).baseline))} grants (one sequential caller,
  random keys, median of alternating rounds).
- **refresh storm** (\`bench/src/refreshStorm.ts\`): \`BENCH_STORM_SUBJECTS\` grants (default 10,000; this run: ${stormSubjects(latest)}) whose access tokens all expired, one
  \`backgroundToken\` call each, all at once, through one broker process with \`maxConcurrentRefreshes\`;
  a proxy in front of dev-idp counts refresh requests in flight. Baseline: one refresh alone (median of 20
  sequential calls on expired grants, same process and store) - the storm's latency as a multiple of it is
  the cost of queueing behind the cap, its throughput as a multiple is what the cap's parallelism gains.
  Grants are provisioned by 100 real logins whose refresh tokens are branched within dev-idp's reuse grace
  period (a login per grant would take minutes); each branch is used exactly once, and the bench checks
  that dev-idp saw exactly one refresh per grant.
- **refresh storm memory** (\`bench/src/stormMemory.ts\`, \`node --expose-gc\`): 10,000 and (in a process
  with \`--max-old-space-size=2048\`) 100,000 grants with expired access tokens in the in-memory store, one
  \`backgroundToken\` call each through the Promise facade, all at once, with the cap of 32; the 32 admitted
  refreshes are held at \`before_upstream\` until the heap after a forced GC stops moving, so every call is
  pending. Figure: that heap minus the heap before the calls, per call. Baseline (same process and harness):
  pending calls into a function that only queues its caller. Then the calls are let go: each must be served,
  with exactly one refresh per grant at the token endpoint (a process of its own), or the bench fails.
- **memory** (\`bench/src/memory.ts\`, \`node --expose-gc\`): heap of core's \`AccessTokenCache\` with 100,000
  entries against a plain \`Map\` of the same 100,000 key strings to the same token strings.
- **CLI start-up** (\`apps/cli/bench/startup.ts\`): \`token-broker --help\` (printed from the help the
  build recorded from the same CLI, without loading it; a test checks that it equals what the whole CLI
  prints) and \`token-broker keys --help\` (the whole CLI: Effect and @effect/cli loaded, as every command
  does) against \`node -e 0\`, alternating the three.
- **caller secret verification** (\`packages/config/bench/callerSecret.ts\`): \`verifySecret\` for wrong
  secrets differing at the first or the last character, of other lengths (empty, one, 10,000 characters),
  and for the right secret against a stored digest changed in its first or last byte, against the right
  secret verifying, in interleaved rounds; the ratios show whether the cost depends on the candidate.

${PROFILES}
## Steps of this run

| step | command | time | result |
| --- | --- | --- | --- |
${steps}

${SECURITY}
${chaosSection(latest.chaos)}`
}
