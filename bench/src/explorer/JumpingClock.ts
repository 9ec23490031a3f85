import { Clock, Effect } from "effect"

/**
 * The wall clock plus an offset that only grows: `jump(ms)` moves every broker of a schedule forward at
 * once (tokens come due, leases and circuits expire), while sleeps stay real so that real I/O (dev-idp,
 * the SQLite file) keeps its own pace. TestClock cannot be used: its sleeps wait for `adjust`, and a
 * schedule's brokers sleep inside retries and lease waits while real requests are in flight.
 */
export const makeJumpingClock = () => {
  const base = Clock.make()
  let offset = 0
  const millis = () => base.unsafeCurrentTimeMillis() + offset
  const nanos = () => base.unsafeCurrentTimeNanos() + BigInt(offset) * 1_000_000n
  const clock: Clock.Clock = {
    [Clock.ClockTypeId]: Clock.ClockTypeId,
    unsafeCurrentTimeMillis: millis,
    unsafeCurrentTimeNanos: nanos,
    currentTimeMillis: Effect.sync(millis),
    currentTimeNanos: Effect.sync(nanos),
    sleep: (duration) => base.sleep(duration)
  }
  return {
    clock,
    jump: (ms: number) => {
      offset += Math.max(0, ms)
    }
  }
}
