import { type DestinationStream, type Logger as PinoLogger, pino } from "pino"

/** Fields that hold a credential: redacted at the top of a log line and one level down. */
export const SECRET_FIELDS: ReadonlyArray<string> = [
  "authorization",
  "cookie",
  "client_secret",
  "clientSecret",
  "subject_token",
  "token",
  "access_token",
  "accessToken",
  "refresh_token",
  "refreshToken",
  "id_token",
  "password",
  "secret"
]

/**
 * An OAuth callback's `code` and `state`: redacted one level down. At the top of a line `code` is the
 * broker's own problem code (`consent not completed`), which the logs need.
 */
const CALLBACK_FIELDS: ReadonlyArray<string> = ["code", "state"]

/**
 * Log redaction for both servers: whatever a log line carries, these never reach the output. The request
 * serializer logs only method, path (no query string: a consent callback's `code` and `state` live there)
 * and remote address; headers and bodies are never logged. One list for both apps, so that a field added
 * for one is redacted by the other too. pino's `*.field` matches one level down only, hence the bare
 * field names beside it.
 */
export const REDACT_PATHS: ReadonlyArray<string> = [
  "req.headers.authorization",
  "req.headers.cookie",
  ...SECRET_FIELDS.flatMap((field) => [field, `*.${field}`]),
  ...CALLBACK_FIELDS.map((field) => `*.${field}`)
]

export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const
export type LogLevelName = (typeof LOG_LEVELS)[number]

export interface LoggerOptions {
  readonly level: LogLevelName
  /** The `service` field of every line (`token-broker`, `token-broker-mcp`). */
  readonly service: string
  /** Where lines go (default stdout). */
  readonly stream?: DestinationStream | undefined
}

/** The pino logger of a server: its level, its service name, the one redaction list and serializers. */
export const makeLogger = (options: LoggerOptions): PinoLogger =>
  pino(
    {
      level: options.level,
      base: { service: options.service },
      redact: { paths: [...REDACT_PATHS], censor: "[redacted]" },
      serializers: {
        req: (req: { method?: string; url?: string; ip?: string }) => ({
          method: req.method,
          path: (req.url ?? "").split("?")[0],
          remoteAddress: req.ip
        }),
        res: (res: { statusCode?: number }) => ({ statusCode: res.statusCode })
      }
    },
    options.stream ?? pino.destination(1)
  )
