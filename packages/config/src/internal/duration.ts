import { z } from "zod"

const UNITS = "nanos?|micros?|millis?|seconds?|minutes?|hours?|days?|weeks?"
export const DURATION = new RegExp(`^\\d+(\\.\\d+)? (${UNITS})$`)

/** A duration: milliseconds as a number, or text such as "30 seconds", "10 minutes", "30 days". */
export const Duration = z
  .union([
    z.number().nonnegative(),
    z.string().regex(DURATION, {
      message:
        'write a duration as "<number> <unit>", e.g. "30 seconds" (units: millis, seconds, minutes, hours, days, weeks) or a number of milliseconds'
    })
  ])
  .describe('Milliseconds, or "<number> <unit>" such as "30 seconds"')
