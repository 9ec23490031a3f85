/**
 * An estimate of the Vault server's clock, the one clock every replica shares. Each response brings a
 * server timestamp `T` (the `Date` header, to the second, or a KV version's `created_time`, to the
 * nanosecond) that was taken between our local send and receive times, which bounds the offset
 * `server - local` from both sides. The tightest bounds seen are kept, widened by an allowance for the two
 * clocks drifting apart since they were measured.
 */
export interface ServerClock {
  /** Records that the server's clock read `serverMs` (up to `serverMs + resolutionMs`) during `[sentAt, receivedAt]` local time. */
  readonly observe: (serverMs: number, resolutionMs: number, sentAt: number, receivedAt: number) => void
  /** The server's time now, as bounds: it is at least `earliest` and at most `latest`. */
  readonly now: (localMs: number) => { readonly earliest: number; readonly latest: number }
}

/** How fast two clocks are assumed to drift apart at most (200 ppm, far above a healthy NTP client). */
const DRIFT = 2e-4

export const makeServerClock = (): ServerClock => {
  let lo = Number.NEGATIVE_INFINITY
  let hi = Number.POSITIVE_INFINITY
  let measuredAt = 0
  const widen = (at: number) => Math.max(0, at - measuredAt) * DRIFT
  return {
    observe: (serverMs, resolutionMs, sentAt, receivedAt) => {
      if (!Number.isFinite(serverMs)) return
      const sampleLo = serverMs - receivedAt
      const sampleHi = serverMs + resolutionMs - sentAt
      const drift = widen(receivedAt)
      const nextLo = Math.max(lo - drift, sampleLo)
      const nextHi = Math.min(hi + drift, sampleHi)
      // inconsistent bounds mean a clock was stepped: start again from this sample
      if (nextLo > nextHi) {
        lo = sampleLo
        hi = sampleHi
      } else {
        lo = nextLo
        hi = nextHi
      }
      measuredAt = receivedAt
    },
    now: (localMs) => {
      if (!Number.isFinite(lo) || !Number.isFinite(hi)) return { earliest: localMs, latest: localMs }
      const drift = widen(localMs)
      return { earliest: localMs + lo - drift, latest: localMs + hi + drift }
    }
  }
}

/** Parses Vault's RFC 3339 timestamps (nanosecond fraction) to epoch milliseconds; NaN when malformed. */
export const parseVaultTime = (text: string): number => {
  const match = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$/.exec(text)
  if (match === null) return Number.NaN
  const [, base = "", fraction = "", zone = "Z"] = match
  const seconds = Date.parse(`${base}${zone}`)
  return seconds + Number(`0.${fraction || "0"}`) * 1000
}
