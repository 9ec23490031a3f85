/**
 * Fixed-window counters by key (a subject, a client address): `take` counts one event and says whether
 * it is within `max` for the current window, else when the window ends. In memory, per process.
 */
export interface WindowCounter {
  readonly take: (
    key: string,
    now: number
  ) => { readonly ok: true } | { readonly ok: false; readonly retryAfterMs: number }
}

/** Keys tracked at once; beyond, expired windows are dropped first. */
const MAX_KEYS = 100_000

export const makeWindowCounter = (options: {
  readonly max: number
  readonly windowMs: number
}): WindowCounter => {
  const windows = new Map<string, { count: number; readonly resetAt: number }>()
  return {
    take: (key, now) => {
      let entry = windows.get(key)
      if (entry === undefined || entry.resetAt <= now) {
        if (windows.size >= MAX_KEYS) {
          for (const [tracked, value] of windows) if (value.resetAt <= now) windows.delete(tracked)
          if (windows.size >= MAX_KEYS) windows.clear()
        }
        entry = { count: 0, resetAt: now + options.windowMs }
        windows.set(key, entry)
      }
      if (entry.count >= options.max) return { ok: false, retryAfterMs: entry.resetAt - now }
      entry.count += 1
      return { ok: true }
    }
  }
}
