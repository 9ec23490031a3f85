import { afterAll, beforeAll } from "vitest"

/**
 * Shared setup of a `describe` block, run once in `beforeAll`. A setup that fails (PostgreSQL down, a
 * worker that cannot start) fails every test that awaits it, each with the setup's own message: vitest
 * would otherwise report the tests of a failed `beforeAll` as skipped. Resources register their cleanup
 * with `defer` as soon as they exist; `afterAll` runs them last-first, even after a failed setup.
 */
export const suiteSetup = <A>(
  timeoutMs: number,
  setup: (defer: (cleanup: () => Promise<void>) => void) => Promise<A>
): (() => Promise<A>) => {
  let result: Promise<A> | undefined
  const cleanups: Array<() => Promise<void>> = []
  beforeAll(async () => {
    result = setup((cleanup) => {
      cleanups.push(cleanup)
    })
    await result.catch(() => undefined)
  }, timeoutMs)
  afterAll(async () => {
    const errors: Array<unknown> = []
    for (const cleanup of cleanups.splice(0).reverse()) {
      await cleanup().catch((error: unknown) => errors.push(error))
    }
    if (errors.length > 0) throw errors[0]
  }, timeoutMs)
  return () => result ?? Promise.reject(new Error("the suite's setup did not run"))
}
