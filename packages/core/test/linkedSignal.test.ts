import { describe, expect, it } from "vitest"
import { linkedSignal } from "../src/index.js"

const abortReason = (signal: AbortSignal) =>
  new Promise<unknown>((resolve) =>
    signal.addEventListener("abort", () => resolve(signal.reason), { once: true })
  )

describe("linkedSignal", () => {
  it("aborts with a TimeoutError when its time is up", async () => {
    const link = linkedSignal([], 20)
    const reason = await abortReason(link.signal)
    expect(reason).toBeInstanceOf(Error)
    expect((reason as Error).name).toBe("TimeoutError")
  })

  it("aborts with a source's reason, also a source aborted before", async () => {
    const source = new AbortController()
    const link = linkedSignal([undefined, source.signal, null], 60_000)
    const reason = abortReason(link.signal)
    source.abort(new Error("caller gone"))
    expect(((await reason) as Error).message).toBe("caller gone")
    link.done()
    const early = linkedSignal([AbortSignal.abort("before")])
    expect(early.signal.aborted).toBe(true)
    expect(early.signal.reason).toBe("before")
  })

  it("after done(), neither the timer nor a source aborts it", async () => {
    const source = new AbortController()
    const link = linkedSignal([source.signal], 10)
    link.done()
    source.abort()
    // a later timer than the link's own: had done() not stopped it, the link would have aborted by now
    await new Promise((resolve) => setTimeout(resolve, 30))
    expect(link.signal.aborted).toBe(false)
  })
})
