import type { FastifyBaseLogger } from "fastify"
import type { Bindings, ChildLoggerOptions, Logger as PinoLogger } from "pino"

type Level = "fatal" | "error" | "warn" | "info" | "debug" | "trace"

/**
 * The logger of one request: a pino child with the request's bindings, made on the first line written
 * at an enabled level. fastify makes a child per request; with redaction, a pino child costs about as
 * much as the rest of a cache-hit request, and a request that logs nothing (every hit below `info`)
 * need not pay for it. What is written is the same as from the child made at once.
 */
class LazyChildLogger {
  #child: FastifyBaseLogger | undefined

  constructor(
    private readonly parent: PinoLogger,
    private readonly bindings: Bindings,
    private readonly options: ChildLoggerOptions | undefined
  ) {}

  #made(): FastifyBaseLogger {
    this.#child ??= this.parent.child(this.bindings, this.options) as unknown as FastifyBaseLogger
    return this.#child
  }

  #write(level: Level, args: Array<unknown>): void {
    if (this.#child === undefined && !this.parent.isLevelEnabled(level)) return
    ;(this.#made()[level] as (...a: Array<unknown>) => void)(...args)
  }

  get level(): string {
    return this.#child?.level ?? this.options?.level ?? this.parent.level
  }

  set level(level: string) {
    this.#made().level = level
  }

  fatal(...args: Array<unknown>): void {
    this.#write("fatal", args)
  }
  error(...args: Array<unknown>): void {
    this.#write("error", args)
  }
  warn(...args: Array<unknown>): void {
    this.#write("warn", args)
  }
  info(...args: Array<unknown>): void {
    this.#write("info", args)
  }
  debug(...args: Array<unknown>): void {
    this.#write("debug", args)
  }
  trace(...args: Array<unknown>): void {
    this.#write("trace", args)
  }
  silent(): void {}

  child(bindings: Bindings, options?: ChildLoggerOptions): FastifyBaseLogger {
    return this.#made().child(bindings, options)
  }
}

export const lazyChildLogger = (
  parent: PinoLogger,
  bindings: Bindings,
  options: ChildLoggerOptions | undefined
): FastifyBaseLogger => new LazyChildLogger(parent, bindings, options) as unknown as FastifyBaseLogger
