/** Where the time and memory go, from the profiles behind the figures (kept by hand, with their commands). */
export const PROFILES = `## Where the time and memory go (profiles)

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
  and the socket write (46 us against 38 us): the 0.7x goal is not reached. After (commits fb57720,
  adf0579, 934158a, 2026-12-03; figures from \`perf\` cpu-clock with \`--perf-basic-prof\`, since the V8
  profiler counts time descheduled inside \`writev\` as CPU): a verified Basic header is remembered by
  its exact value (1.8 us to 0), the rate limit is a callback hook of the broker's own in place of
  @fastify/rate-limit's async hook and its three promises (1.2 to 0.8 us, headers and 429 pinned by
  \`test/rateLimit.test.ts\` first), the answer's JSON is written once per token around the seconds left
  (2.8 us to 0); our own code 2.2 to 0.8 us. CPU from /proc 27.9 to 25.0 us per request over five runs
  each (bare 15 us); req/s ratio 0.56 to 0.68 (run medians 0.66-0.80), 0.70 (rounds 0.70-0.71) on a
  quiet machine, 0.65 in that day's \`pnpm bench\`. What separates it from bare fastify now: fastify's
  per-request work for four hooks, parameterised routing and the lazy logger (3-4 us), five more
  headers (three \`x-ratelimit-*\`, \`cache-control\`, \`x-request-id\`: 1.2-1.9 us in \`writeHead\`),
  parsing the longer request (it carries the Authorization header), idle-timeout timers (0.6 us against
  0.1), and the loopback write while the broker is the busier process. 0.7x every run would take fewer
  hooks (caller auth, rate limit and request id folded into one) or fewer headers. After (commit
  f43292f, 2026-12-04, on a machine of another kind, AMD EPYC, where a request costs about three times
  as much CPU): the bench ran both servers through tsx, but the broker is deployed as its bundle, and
  tsx's loader costs a server 7-20 % of its CPU per request (main thread's CPU per request from
  /proc/PID/task, amount-limited autocannon runs: bare fastify 60.6 and 56.4 us on plain node, 72.8 and
  60.6 us under tsx; the broker 88.2 and 93.0 us bundled, 97.3 and 104.3 us from its sources through
  tsx). Both now run bundled by the same esbuild, on plain node. In the broker, caller authentication
  and the rate limit are one \`preValidation\` hook, the HTTP metrics are counted where fastify logs a
  request as completed (a \`LogController\`: no \`onResponse\` hook stage), and a hit is answered
  synchronously (no async handler). Their effect is small: user-space instructions per request under
  callgrind (\`--single-threaded\`, 4,000 requests after 10,000, V8's compiler and GC left out) went
  from 119.1k to 117.1k, bare fastify 98.4k; both make one \`read\` and one \`writev\` per request
  (\`strace -c\`). req/s ratio on this machine 0.58 and 0.65 (two runs before) to 0.74 and 0.76 (rounds
  0.60-0.82), 0.75 (rounds 0.64-0.80), p99 1.33x, in this \`pnpm bench\`: the goal is met. What is
  left is the broker's about 20 % more instructions per request than bare fastify's (caller memo,
  rate limit and its three headers, routing with parameters, the token view).
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
  (59 us) remain. After (commits 6794b09, fb57720, adf0579, 934158a, 2026-12-03; \`perf\` as above): the
  form is read into a Map and plainly valid parameters skip zod (1.5 us to 0; a test over about 56,000
  forms shows the shortcut accepts only what zod accepts, with the same values), the handler 7.2 to 3.5
  us, the caller memo 2.0 to 0, the answer's JSON 2.4 to 0.1 us; CPU from /proc 55.8 to 47.4 us per
  request over five runs each (bare 28 us); req/s ratio 0.56 to 0.62 (run medians 0.56-0.71), 0.61 in
  that day's \`pnpm bench\`: the goal is met. Node's HTTP parsing and the socket write remain the larger part.
  On the AMD EPYC machine of 2026-12-04, both servers bundled on plain node (see above): 0.70 (rounds
  0.63-0.71), p99 1.31x, in this \`pnpm bench\`; through tsx the same day 0.69-0.70.
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
  counted here. After (commits da3141c, bfa8f0f, 3322b3f, 62c0a50, 2b69f84, 2026-12-03; the server's
  profile scaled to its CPU per call, 0.888 to 0.701 ms in an A/B of the two builds in one run, 9 rounds):
  the bearer check takes a remembered verification synchronously (\`TokenVerifier.remembered\`: the
  token's digest, its \`exp\` against the clock, the audience; a client's own token still refused) in
  callback hooks (29 to 8 us with the Host check, whose verdict is remembered per header, at most 256);
  the broker client sends over undici through a \`send\` option instead of a WHATWG \`fetch\` (104 to
  47 us); the notes call on one AbortSignal and timer (\`requestWithDeadline\`; 87 to 53 us); no pino
  child for a request that logs nothing. Left in the server: socket writes about 120 us (the SSE answer
  and one per upstream call), Node's HTTP 85, the SDK and its hono transport 60 (the baseline pays
  those too), undici 44, Effect 47, GC 41, zod 38 us. The broker (0.08-0.19 ms a call) and dev-idp
  (0.17-0.27 ms) share the two cores. Ratio 0.34 (rounds 0.31-0.35), CPU per call 2.80x, in that day's
  \`pnpm bench\`: not met. What it would take: the server at about the bare server's
  0.23 ms a call while still making both calls. Against a bare SDK server that makes the same two calls
  with undici and validates the answers (an experiment, not part of the bench: 0.48-0.53 ms a call) the
  server scores 0.77x (rounds 0.52-0.86). After (commit db47c49, 2026-12-04, the AMD EPYC machine):
  the figure had been in the MCP server's favour - it ran bundled while the baseline ran through tsx,
  whose loader costs a server 7-20 % of its CPU (see the HTTP broker above); the baseline and the
  broker now run bundled as well. Both token sources are measured: in-process (the default) and
  remote. dev-idp's notes API, which shares the two cores, remembers a verified access token until its
  \`exp\` instead of checking its RS256 signature on every call (0.45 to 0.22-0.30 ms of dev-idp's CPU a
  call), and the notes list is checked in place where plain (zod only for the rest: a property test
  over 5,000 generated answers pins that it gives what zod gives). In-process 0.40 (rounds 0.36-0.45),
  CPU per call 2.56x, remote 0.26 (rounds 0.23-0.28) in this \`pnpm bench\` (0.33 in another run the
  same day): not met. Profile of the in-process server under the load (\`BENCH_TOKEN_SOURCE=in-process
  BENCH_PROFILE=dir\`, summed over the whole profile): the tool call itself - the cached token, the
  notes request through undici, the answer - is 9 % of its busy time; the SDK's request handling
  (hono's Request and Response, the JSON-RPC parse and the output schema's zod validation, 14.6 %
  together with the tool), Node's HTTP server and the socket writes (13 %) make up most of the rest,
  work the baseline does as well; Effect's runtime for the tool's one run is about 17 % inclusive of
  the notes request it drives. The server's CPU per call is nonetheless 2.3-2.6x the baseline's: it
  shares the two cores with dev-idp (0.22-0.30 ms a call) and the load generator, the baseline with
  the load generator alone, so it is descheduled and resumes on other caches more often (a reading
  this machine cannot confirm: it has no hardware counters). What it would take: the upstream API on
  other cores, as in a deployment, or a machine with more cores for the bench; within the server, a
  notes call without Effect's runtime (a plain promise around undici) and no zod on the JSON-RPC
  message, which the SDK does for every server. After (commits 5f3f8cd, c299d61, 0a3082f, 2026-12-07,
  an AMD EPYC machine about four times as fast per call; CPU per call from /proc in
  \`BENCH_TOKEN_SOURCE=in-process pnpm --filter @token-broker/mcp-server bench\`, profiles with
  \`BENCH_PROFILE=dir\`, which now writes the baseline's too, and allocations from V8's sampling heap
  profiler with collected objects counted). Before: 0.32-0.33 ms a call against 0.15 ms (2.22-2.32x),
  ratio 0.47 (rounds 0.45-0.49) in two runs; 322 us of busy time a call against 139 us, 175 KB
  allocated a call. Above the baseline: GC 41 us against 14, the notes API's answer - 20 notes with
  their content - parsed (9.5 us, 6 KB) and read by undici (6.5 KB), its summaries and text made anew
  on every call (13 us; the baseline makes them too), Effect's runtime for the call's one fiber (16 us
  of its own, about 10 KB), the notes call's AbortSignal (Node 20 makes each transferable), the
  socket writes. Fixed: the list is asked for as a Nextcloud Notes client asks for it - without the
  content (\`exclude=content\`: notes_list shows none) and with the entity tag of the list last
  answered for that subject and query (\`If-None-Match\`); the API answers 304 after it checked the
  token, and the server answers with the list it kept and the answer it made of it, frozen (at most
  1,000 lists; a change upstream has another tag and shows at once, which the end-to-end suites check).
  dev-idp's notes API got \`exclude\`, the list's ETag and 304 - and the query, which it had never
  received (its category filter filtered nothing). notesApi and notes.ts went from 24 to 2.4 us;
  0.28-0.30 ms a call, ratio 0.49-0.57 over three runs. Then the tool call lost its fiber: the token
  source hands a cache hit synchronously (\`TokenSource.cachedBackgroundToken\`, the broker's
  \`cachedToken\`) and the notes client's calls are promises on undici with the same deadline and the
  same one resend of a read; Effect 16 to 2.5 us: 0.27 ms against 0.16 ms (1.76x), ratio 0.58 (rounds
  0.48-0.62). With the remote broker, each call had cost the server a broker request (about 0.12 ms of
  its CPU: undici 36 us against 13, Effect 28 against 16, the writes): 0.34 (rounds 0.31-0.37), 3.0x
  CPU. The remote token source now keeps the broker's answers (\`cacheTokens\`, on by default: a token
  is used again for the first half of the life it had left and while it lives the call's 10 s,
  forgotten on a 401 report or a revoke through it): 0.59 (rounds 0.57-0.62), 1.77x. The figures rely on
  the 304s: the bench's list does not change during the load. With no list kept (an experiment, not
  part of the bench: \`rememberedLists: 0\`, so every call is a 200 without the content), in-process:
  0.49 (rounds 0.45-0.75), CPU 0.33 ms against 0.17 ms (2.08x). What is left above
  the baseline is the upstream round trip and its cost in the kernel - the answer's \`writev\` takes 31
  us against 12 for the same bytes, the upstream request's write 11.5 us: each write wakes a process
  that sleeps more at the lower rate - and GC (37 us against 14: the calls in flight hold their
  request's objects across scavenges while they wait on the API, which the baseline's calls never do).
`
