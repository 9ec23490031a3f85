import { Effect } from "effect"

/**
 * One request (a promise made by `send`) as an Effect with a time budget. Its one AbortSignal aborts
 * after `timeoutMs` (reason: a `TimeoutError` DOMException, as `AbortSignal.timeout` gives) or when the
 * fiber is interrupted; `onError` maps a rejection, a timeout being one whose `name` is `TimeoutError`.
 *
 * What `Effect.tryPromise` with its signal plus `linkedSignal` do, for a hot path: one AbortController
 * instead of two, no abort listener added and removed, the interruption a canceler. The timer is an
 * ordinary one (see `linkedSignal` for why not `AbortSignal.timeout`), cleared when the request settles
 * and unref'd, so it never holds the process up.
 */
export const requestWithDeadline = <A, E>(
  timeoutMs: number,
  send: (signal: AbortSignal) => PromiseLike<A>,
  onError: (cause: unknown) => E
): Effect.Effect<A, E> =>
  Effect.async<A, E>((resume) => {
    const controller = new AbortController()
    const timer = setTimeout(
      () => controller.abort(new DOMException("The operation timed out", "TimeoutError")),
      timeoutMs
    )
    timer.unref?.()
    let sent: PromiseLike<A>
    try {
      sent = send(controller.signal)
    } catch (cause) {
      clearTimeout(timer)
      resume(Effect.fail(onError(cause)))
      return
    }
    sent.then(
      (value) => {
        clearTimeout(timer)
        resume(Effect.succeed(value))
      },
      (cause: unknown) => {
        clearTimeout(timer)
        resume(Effect.fail(onError(cause)))
      }
    )
    return Effect.sync(() => {
      clearTimeout(timer)
      controller.abort()
    })
  })
