import { describe, expect, it } from "vitest"
import { makeCoarseClock, type ScheduleExpiry } from "../src/internal/coarseClock.js"

/** A time source and expiry timer the test moves by hand. */
const manual = () => {
  const state = {
    now: 1_000,
    reads: 0,
    armed: 0,
    armedAt: 0,
    pending: undefined as (() => void) | undefined
  }
  const schedule: ScheduleExpiry = (expire, ms) => {
    expect(ms).toBe(100)
    state.armed++
    state.armedAt = state.now
    state.pending = expire
    return () => {
      state.pending = undefined
    }
  }
  const read = () => {
    state.reads++
    return state.now
  }
  const fire = () => {
    const expire = state.pending
    state.pending = undefined
    expire?.()
  }
  return { state, schedule, read, fire }
}

describe("the Promise facade's hit clock", () => {
  it("answers one reading plus the window for at most maxUses reads, then reads the clock again", () => {
    const time = manual()
    const clock = makeCoarseClock(time.read, { windowMs: 100, maxUses: 4, schedule: time.schedule })
    const bounds = Array.from({ length: 9 }, () => {
      const bound = clock.upperBound()
      time.state.now += 10
      return bound
    })
    expect(bounds).toEqual([1_100, 1_100, 1_100, 1_100, 1_140, 1_140, 1_140, 1_140, 1_180])
    expect(time.state.reads).toBe(3)
    // One timer for the whole stretch: it was armed with the first reading and has not fired.
    expect(time.state.armed).toBe(1)
  })

  it("reads the clock again once the window's timer fired, and arms no timer while nothing reads", () => {
    const time = manual()
    const clock = makeCoarseClock(time.read, { windowMs: 100, schedule: time.schedule })
    expect(clock.upperBound()).toBe(1_100)
    time.state.now = 1_090
    expect(clock.upperBound()).toBe(1_100)
    time.state.now = 1_100
    time.fire()
    expect(time.state.pending).toBeUndefined()
    time.state.now = 5_000
    expect(clock.upperBound()).toBe(5_100)
    expect(time.state.reads).toBe(2)
    expect(time.state.armed).toBe(2)
  })

  it("is never earlier than the time while the window's timer fires on time", () => {
    const time = manual()
    const clock = makeCoarseClock(time.read, { windowMs: 100, maxUses: 1_000, schedule: time.schedule })
    for (let step = 0; step < 5_000; step++) {
      if (time.state.pending !== undefined && time.state.now >= time.state.armedAt + 100) time.fire()
      expect(clock.upperBound()).toBeGreaterThanOrEqual(time.state.now)
      time.state.now += (step * 7) % 13
    }
    expect(time.state.reads).toBeGreaterThan(1)
  })

  it("cancels its timer on close and reads the clock afresh afterwards", () => {
    const time = manual()
    const clock = makeCoarseClock(time.read, { windowMs: 100, schedule: time.schedule })
    clock.upperBound()
    clock.close()
    expect(time.state.pending).toBeUndefined()
    time.state.now = 2_000
    expect(clock.upperBound()).toBe(2_100)
  })
})
