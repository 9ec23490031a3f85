/**
 * A clock for the Promise facade's cache hits, where one real clock read costs more than the rest of the
 * hit (about 0.1 us for `Date.now()` on a virtual machine without a fast clock source). One reading
 * serves at most `maxUses` reads, and only until a timer armed when it was taken fires `windowMs` later;
 * the timer is unref'd and armed only while reads happen, so an idle process is never woken.
 *
 * `upperBound` answers the reading plus `windowMs`: no earlier than the real time while the event loop
 * turns (the timer then fires within the window, plus the loop's lag), so an expiry check against it
 * never serves a token past its deadline; it only treats tokens as `windowMs` older than they are. A
 * stretch of synchronous code that never yields to the event loop keeps a reading for at most `maxUses`
 * reads.
 */
export interface CoarseClock {
  /** Epoch ms, never earlier than now (see above). */
  readonly upperBound: () => number
  /** Cancels the pending timer; later reads still work and read the clock again. */
  readonly close: () => void
}

/** Runs `expire` once after `ms`; answers the cancel. Node's unref'd `setTimeout` by default. */
export type ScheduleExpiry = (expire: () => void, ms: number) => () => void

export interface CoarseClockOptions {
  /** How long a reading may serve. Default 100 ms. */
  readonly windowMs?: number | undefined
  /** How many reads one reading may serve. Default 64. */
  readonly maxUses?: number | undefined
  readonly schedule?: ScheduleExpiry | undefined
}

const unrefTimeout: ScheduleExpiry = (expire, ms) => {
  const timer = setTimeout(expire, ms)
  timer.unref()
  return () => clearTimeout(timer)
}

export const makeCoarseClock = (read: () => number, options: CoarseClockOptions = {}): CoarseClock => {
  const windowMs = options.windowMs ?? 100
  const maxUses = Math.max(1, options.maxUses ?? 64)
  const schedule = options.schedule ?? unrefTimeout
  let bound = 0
  let usesLeft = 0
  let cancel: (() => void) | undefined
  const expire = () => {
    usesLeft = 0
    cancel = undefined
  }
  return {
    upperBound: () => {
      if (usesLeft > 0) {
        usesLeft--
        return bound
      }
      bound = read() + windowMs
      usesLeft = maxUses - 1
      // A timer armed for an earlier reading fires sooner than this one's window: it expires this one too.
      if (cancel === undefined) cancel = schedule(expire, windowMs)
      return bound
    },
    close: () => {
      cancel?.()
      expire()
    }
  }
}
