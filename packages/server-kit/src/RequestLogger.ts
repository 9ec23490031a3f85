// A request's logger made lazily: no pino child for a request that writes no line (see `lazyChildLogger`).
// Both servers give it to fastify as their `childLoggerFactory`.
import type { Bindings, ChildLoggerOptions, Logger as PinoLogger } from "pino"

const LEVELS = ["fatal", "error", "warn", "info", "debug", "trace"] as const
type Level = (typeof LEVELS)[number]

/**
 * The logger of one request: a pino child with the request's bindings, made on the first line written
 * at an enabled level. fastify makes a child per request; with redaction, a pino child costs about as
 * much as the rest of a cache-hit request, and a request that logs nothing (every hit below `info`)
 * need not pay for it. What is written is the same as from the child made at once.
 */
class LazyChildLogger {
  #child: PinoLogger | undefined

  constructor(
    private readonly parent: PinoLogger,
    private readonly bindings: Bindings,
    private readonly options: ChildLoggerOptions | undefined
  ) {}

  #made(): PinoLogger {
    this.#child ??= this.parent.child(this.bindings, this.options)
    return this.#child
  }

  write(level: Level, args: Array<unknown>): void {
    if (this.#child === undefined && !this.parent.isLevelEnabled(level)) return
    ;(this.#made()[level] as (...a: Array<unknown>) => void)(...args)
  }

  get level(): string {
    return this.#child?.level ?? this.options?.level ?? this.parent.level
  }

  set level(level: string) {
    this.#made().level = level
  }

  silent(): void {}

  child(bindings: Bindings, options?: ChildLoggerOptions): PinoLogger {
    return this.#made().child(bindings, options)
  }
}

// one method per level, each `write` at that level: defined once, on the prototype (not a closure per request)
for (const level of LEVELS) {
  Object.defineProperty(LazyChildLogger.prototype, level, {
    value: function (this: LazyChildLogger, ...args: Array<unknown>) {
      this.write(level, args)
    }
  })
}

/** The logger of one request (fastify's `childLoggerFactory`): a pino child made on its first written line. */
export const lazyChildLogger = (
  parent: PinoLogger,
  bindings: Bindings,
  options: ChildLoggerOptions | undefined
): PinoLogger => new LazyChildLogger(parent, bindings, options) as unknown as PinoLogger
