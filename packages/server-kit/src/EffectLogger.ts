import { HashMap, Layer, Logger, LogLevel } from "effect"
import type { Logger as PinoLogger } from "pino"
import type { LogLevelName } from "./Logger.js"

/**
 * Effect's logs (from core and the stores) go to the server's pino logger, at the matching level, with
 * their annotations as fields (provider, grant, outcome, status...: core never annotates a secret, and the
 * redaction paths apply to them as to every other field).
 */
const toPino = (log: PinoLogger) =>
  Logger.replace(
    Logger.defaultLogger,
    Logger.make(({ logLevel, message, annotations }) => {
      const text = Array.isArray(message) ? message.map(String).join(" ") : String(message)
      const fields = { ...Object.fromEntries(HashMap.toEntries(annotations)), source: "effect" }
      if (LogLevel.greaterThanEqual(logLevel, LogLevel.Error)) log.error(fields, text)
      else if (LogLevel.greaterThanEqual(logLevel, LogLevel.Warning)) log.warn(fields, text)
      else if (LogLevel.greaterThanEqual(logLevel, LogLevel.Info)) log.info(fields, text)
      else log.debug(fields, text)
    })
  )

/** Effect drops lines below Info unless told: the runtime's minimum follows the server's log level. */
const EFFECT_LEVELS: Record<LogLevelName, LogLevel.LogLevel> = {
  trace: LogLevel.Trace,
  debug: LogLevel.Debug,
  info: LogLevel.Info,
  warn: LogLevel.Warning,
  error: LogLevel.Error,
  fatal: LogLevel.Fatal,
  silent: LogLevel.None
}

/** The layer that sends a runtime's Effect logs to `log`, from `level` up. */
export const layerEffectLogger = (log: PinoLogger, level: LogLevelName): Layer.Layer<never> =>
  Layer.merge(toPino(log), Logger.minimumLogLevel(EFFECT_LEVELS[level]))
