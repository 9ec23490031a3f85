/**
 * The one rule for a provider id: 1-64 characters of `A-Z a-z 0-9 . _ -`. Provider ids appear in URLs
 * (`/v1/grants/{provider}`), lease names, log fields and metric labels, so every package checks them with
 * this schema (config files, HTTP routes, the CLI) and the broker refuses any other before it looks one up.
 */
import { z } from "zod"

/** The pattern, anchored; also the `pattern` of the provider-id parameter in the OpenAPI document. */
export const PROVIDER_ID_PATTERN = /^[A-Za-z0-9._-]{1,64}$/

/** The rule in words, for messages: "provider must be 1-64 characters of [A-Za-z0-9._-]". */
export const PROVIDER_ID_RULE = "1-64 characters of [A-Za-z0-9._-]"

/** The zod schema of a provider id. */
export const ProviderId = z
  .string()
  .regex(PROVIDER_ID_PATTERN, { message: `a provider id is ${PROVIDER_ID_RULE}` })

export const isProviderId = (value: string): boolean => PROVIDER_ID_PATTERN.test(value)
