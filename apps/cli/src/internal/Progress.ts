import { Effect } from "effect"
import { CliEnvironment } from "./Environment.js"
import { formatCount } from "./Output.js"

/**
 * Progress of a long operation on stderr: a bar redrawn in place on a terminal, plain lines otherwise
 * (one every 5%, so logs stay short).
 */
export interface Progress {
  readonly update: (done: number, detail: string) => Effect.Effect<void>
  readonly finish: Effect.Effect<void>
}

const WIDTH = 30

export const makeProgress = (label: string, total: number): Effect.Effect<Progress, never, CliEnvironment> =>
  Effect.map(CliEnvironment, (env) => {
    let lastPercent = -1
    let drawn = false
    const percentOf = (done: number) => (total === 0 ? 100 : Math.floor((done / total) * 100))
    const update = (done: number, detail: string) =>
      Effect.sync(() => {
        const percent = percentOf(done)
        const counts = `${formatCount(done)}/${formatCount(total)}`
        if (env.stderrIsTTY) {
          const filled = Math.round((Math.min(percent, 100) / 100) * WIDTH)
          const bar = `${"█".repeat(filled)}${"░".repeat(WIDTH - filled)}`
          env.writeStderr(`\r\u001b[2K${label} ${bar} ${String(percent).padStart(3)}% ${counts}  ${detail}`)
          drawn = true
        } else if (percent >= lastPercent + 5 || done === total) {
          if (percent === lastPercent) return
          lastPercent = percent
          env.writeStderr(`${label}: ${percent}% ${counts} ${detail}\n`)
        }
      })
    const finish = Effect.sync(() => {
      if (drawn) env.writeStderr("\n")
    })
    return { update, finish }
  })
