import { Writable } from "node:stream"
import type { DestinationStream, Logger as PinoLogger } from "pino"

export { errorCallback, expectSafeErrorPage } from "./testing/ConsentErrorPage.js"
export { LogCapture } from "./testing/LogCapture.js"
export { addressFileText, type ServerProcess, spawnServer } from "./testing/ServerProcess.js"

/**
 * The fields a server's log must never show, written out here rather than taken from `REDACT_PATHS`:
 * a field dropped from that list makes `secretsReachingTheLog` name it.
 */
const CREDENTIALS = (
  "authorization cookie client_secret clientSecret subject_token token access_token accessToken " +
  "refresh_token refreshToken id_token password secret"
).split(" ")
const CALLBACK_PARAMS = ["code", "state"] as const

/**
 * Logs a line per secret field through the logger `make` builds (at the top of the line, one level down,
 * and in the request headers fastify hands the serializer) and returns every place whose value reached
 * the output. A server whose logger redacts all of them returns `[]`.
 */
export const secretsReachingTheLog = (make: (stream: DestinationStream) => PinoLogger): Array<string> => {
  let output = ""
  const stream = new Writable({
    write(chunk, _encoding, done) {
      output += String(chunk)
      done()
    }
  })
  const logger = make(stream as unknown as DestinationStream)
  const placed: Array<[string, string]> = []
  const value = (place: string) => {
    const secret = `leak-${placed.length}-${place.replace(/\W/g, "-")}`
    placed.push([place, secret])
    return secret
  }
  for (const field of CREDENTIALS) {
    logger.info({ [field]: value(field) }, "top-level field")
    logger.info({ upstream: { [field]: value(`upstream.${field}`) } }, "nested field")
  }
  for (const field of CALLBACK_PARAMS) {
    logger.info({ callback: { [field]: value(`callback.${field}`) } }, "callback parameter")
  }
  for (const header of ["authorization", "cookie"]) {
    logger.info({ req: { headers: { [header]: value(`req.headers.${header}`) } } }, "request")
    logger.info({ headers: { [header]: value(`headers.${header}`) } }, "headers")
  }
  logger.flush?.()
  return placed.filter(([, secret]) => output.includes(secret)).map(([place]) => place)
}
