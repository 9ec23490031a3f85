import type { LoadOp, LoadResult, WorkerInit } from "../test/support/workerProtocol.js"
import { type ChaosWorker, startChaosWorker } from "./harness.js"
import type { TokenChecker } from "./tokenChecks.js"

/** `count` broker processes for a load run, every token they stream checked by `checker`. */
export const startLoadWorkers = (
  count: number,
  init: (index: number) => WorkerInit,
  checker: TokenChecker
): Promise<Array<ChaosWorker>> =>
  Promise.all(
    Array.from({ length: count }, (_, i) =>
      startChaosWorker(init(i), {
        onToken: (token) =>
          checker.check(token.subject, token.accessToken, token.servedAt, {
            source: token.source,
            status: token.grantStatus
          })
      })
    )
  )

/**
 * The same `load` op on every worker at once; settles with each worker's result and their sums (calls,
 * calls served, failures by `<_tag>:<reason or code>`).
 */
export const runLoad = async (workers: ReadonlyArray<ChaosWorker>, op: LoadOp) => {
  const results = await Promise.all(workers.map((worker) => worker.request<LoadResult>(op)))
  const failures: Record<string, number> = {}
  for (const result of results)
    for (const [key, n] of Object.entries(result.failures)) failures[key] = (failures[key] ?? 0) + n
  return {
    results,
    calls: results.reduce((sum, r) => sum + r.calls, 0),
    ok: results.reduce((sum, r) => sum + r.ok, 0),
    failures
  }
}
