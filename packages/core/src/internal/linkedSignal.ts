/**
 * One AbortSignal that aborts when any source aborts or after `timeoutMs`, for a request's lifetime.
 *
 * Not `AbortSignal.any([..., AbortSignal.timeout(ms)])`: Node 20's composite holds its sources weakly and a
 * timeout signal's timer holds its signal weakly, so a garbage collection during a long request can drop
 * the timeout and the request never ends (nodejs/node#57736; seen here as a client call that should have
 * timed out after 200 ms hanging for two minutes on a loaded machine). Here the timer is an ordinary one,
 * and the sources stay referenced from the returned handle until `done()`: keep the handle reachable for as
 * long as the request (and the reading of its body) runs.
 */
export interface LinkedSignal {
  readonly signal: AbortSignal
  /** Stops the timer and detaches from the sources. */
  readonly done: () => void
}

export const linkedSignal = (
  sources: ReadonlyArray<AbortSignal | null | undefined>,
  timeoutMs?: number
): LinkedSignal => {
  const controller = new AbortController()
  const attached: Array<readonly [AbortSignal, () => void]> = []
  for (const source of sources) {
    if (source === null || source === undefined) continue
    if (source.aborted) {
      controller.abort(source.reason)
      continue
    }
    const onAbort = () => controller.abort(source.reason)
    source.addEventListener("abort", onAbort, { once: true })
    attached.push([source, onAbort])
  }
  const timer =
    timeoutMs === undefined
      ? undefined
      : setTimeout(
          () => controller.abort(new DOMException("The operation timed out", "TimeoutError")),
          timeoutMs
        )
  timer?.unref?.()
  return {
    signal: controller.signal,
    done: () => {
      if (timer !== undefined) clearTimeout(timer)
      for (const [source, onAbort] of attached) source.removeEventListener("abort", onAbort)
      attached.length = 0
    }
  }
}
