/**
 * `BENCHMARKS.md` from one `pnpm bench` run (`bench/results/latest.json`): the machine, the command,
 * one table with every figure, its baseline measured in the same run and the ratio, then the details,
 * the security checks and where they live, and the last chaos run when there is one.
 */

import { PROFILES } from "./internal/benchmarkProfiles.js"
import { arr, fmt, type Latest, num, obj, rowsOf, storageRows } from "./internal/benchmarkRows.js"

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
  of the same size. The broker (its bundle, built at the start of the run and started as \`pnpm start\`
  does, with a config file), the bare server (bundled by the same esbuild; both on plain node: tsx's
  loader alone costs a server 7-20 % of its CPU per request), dev-idp and each autocannon run are
  processes of their own; rounds alternate which server goes first, and the ratios are medians of the
  rounds' ratios with their spread. The run fails when a request fails or when the broker's
  own \`token_requests_total\` counts anything but hits during the measurement. The same for the RFC 8693
  exchange at \`/oauth/token\` with one user's subject token (a cached session token: every request must
  count as \`token_exchange_total{outcome="cached"}\`), against a bare route that receives and parses the
  same form body.
- **MCP server** (\`apps/mcp-server/bench/toolsCall.ts\`): \`tools/call notes_list\` in one MCP session
  (Streamable HTTP, a JSON-RPC id per request) against a minimal \`@modelcontextprotocol/sdk\` server with
  no authentication whose \`notes_list\` answers the same notes from memory (the answers are checked to
  be equal). The MCP server does its whole work on every call: it verifies the user's bearer token, gets
  the upstream token - from the broker in its own process (\`tokenSource: in-process\`, the default: a
  cache hit in memory) or the one it keeps from the HTTP broker's last answer (\`tokenSource: remote\`,
  \`cacheTokens\`: no broker request while the token is young) - and calls dev-idp's notes API with it,
  an HTTP call the baseline, as issue 15 defines it, does not make. That call asks for the list as a
  Nextcloud Notes client does: without the notes' content, with the entity tag of the list last answered
  for the user (\`If-None-Match\`), which the API answers 304 after it checked the token, as it does
  during the load (the list does not change). Both token sources are measured, each against the baseline
  in a run of its own. The MCP
  server, the broker and the baseline (each a bundle built at the start of the run, on plain node),
  dev-idp and each load run (autocannon's API) are processes of their own; rounds alternate, ratios are
  medians of the rounds' ratios with their spread; each server process's CPU time per call is read
  from /proc around each run, and so are dev-idp's and the broker's, which share the two cores with the
  MCP server (the baseline calls neither). The run fails when a request fails, an answer is an error,
  dev-idp's token endpoint got any request (a refresh), or the broker's \`token_requests_total\` counts
  anything but hits (with the in-process broker: anything at all).
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
