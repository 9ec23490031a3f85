import { Writable } from "node:stream"
import pino from "pino"
import { describe, expect, it } from "vitest"
import { lazyChildLogger } from "../src/RequestLogger.js"

const capture = (level: string) => {
  const lines: Array<Record<string, unknown>> = []
  const stream = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk)
        .split("\n")
        .filter((l) => l.length > 0))
        lines.push(JSON.parse(line))
      done()
    }
  })
  const parent = pino({ level, redact: { paths: ["secret"], censor: "[redacted]" } }, stream)
  return { parent, lines }
}

describe("the request logger", () => {
  it("writes what a child made at once writes: the request's bindings, redaction, child loggers", () => {
    const { parent, lines } = capture("debug")
    const log = lazyChildLogger(parent, { reqId: "r-1" }, undefined)
    log.info({ secret: "s3cr3t-value", route: "/x" }, "hello")
    log.child({ step: "inner" }).debug("deeper")
    log.trace("below the level")
    expect(lines).toHaveLength(2)
    expect(lines[0]).toMatchObject({
      reqId: "r-1",
      route: "/x",
      secret: "[redacted]",
      msg: "hello",
      level: 30
    })
    expect(lines[1]).toMatchObject({ reqId: "r-1", step: "inner", msg: "deeper", level: 20 })
  })

  it("makes no child for a request that writes nothing at an enabled level", () => {
    const { parent, lines } = capture("warn")
    let children = 0
    const counted = Object.assign(Object.create(parent), {
      child: (...args: Parameters<typeof parent.child>) => {
        children += 1
        return parent.child(...args)
      }
    }) as typeof parent
    const log = lazyChildLogger(counted, { reqId: "r-2" }, undefined)
    log.info("not written")
    log.debug("not written")
    expect(children).toBe(0)
    expect(log.level).toBe("warn")
    log.warn("written")
    log.error("written too")
    expect(children).toBe(1)
    expect(lines.map((l) => [l.reqId, l.msg])).toEqual([
      ["r-2", "written"],
      ["r-2", "written too"]
    ])
  })
})
