import { Duration, Effect } from "effect"
import { ConfigInvalid } from "../Errors.js"
import { type ProviderConfig, providerSettingsProblem } from "../Provider.js"
import { clientAuth } from "./clientAuthentication.js"

export const DEFAULT_REQUEST_TIMEOUT: Duration.DurationInput = "10 seconds"

export const timeoutSeconds = (provider: ProviderConfig) =>
  Duration.toMillis(Duration.decode(provider.requestTimeout ?? DEFAULT_REQUEST_TIMEOUT)) / 1000

/** Checks a provider's configuration and prepares its client authentication (imports a private JWK). */
export const prepare = (provider: ProviderConfig, index: number) =>
  Effect.gen(function* () {
    const field = (name: string) => `providers[${index}].${name}`
    const invalid = (name: string, message: string) =>
      new ConfigInvalid({ field: field(name), message: `provider "${provider.id}": ${message}` })
    if (provider.id.length === 0) return yield* invalid("id", "the id must not be empty")
    if (provider.clientId.length === 0) return yield* invalid("clientId", "the client id must not be empty")
    const insecure = provider.allowInsecureRequests === true
    yield* checkUrl(provider.issuer, insecure, () => invalid("issuer", ""))
    const problem = providerSettingsProblem(provider)
    if (problem !== undefined) {
      return yield* new ConfigInvalid({ field: field(problem.field), message: problem.message })
    }
    for (const [name, value] of Object.entries(provider.endpoints ?? {})) {
      if (value !== undefined) yield* checkUrl(value, insecure, () => invalid(`endpoints.${name}`, ""))
    }
    if (provider.internalBaseUrl !== undefined) {
      yield* checkUrl(provider.internalBaseUrl.from, true, () => invalid("internalBaseUrl.from", ""))
      yield* checkUrl(provider.internalBaseUrl.to, insecure, () => invalid("internalBaseUrl.to", ""))
    }
    const timeout = Effect.try(() => Duration.decode(provider.requestTimeout ?? DEFAULT_REQUEST_TIMEOUT))
    const decoded = yield* Effect.orElseFail(timeout, () => invalid("requestTimeout", "not a duration"))
    if (Duration.toMillis(decoded) <= 0) return yield* invalid("requestTimeout", "must be positive")
    const auth = yield* clientAuth(provider.clientAuthentication, () =>
      invalid("clientAuthentication.privateJwk", "not a private JWK (JSON text with `d`) that can sign")
    )
    return { provider, auth, insecure }
  })

export const checkUrl = (value: string, insecure: boolean, fail: () => ConfigInvalid) => {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    const error = fail()
    return Effect.fail(new ConfigInvalid({ field: error.field, message: `${error.message}not a URL` }))
  }
  if (url.protocol === "https:" || (insecure && url.protocol === "http:")) return Effect.void
  const error = fail()
  return Effect.fail(
    new ConfigInvalid({
      field: error.field,
      message:
        url.protocol === "http:"
          ? `${error.message}${value} is http://; use https://, or set allowInsecureRequests: true (local development and tests only)`
          : `${error.message}${value} must be an https:// URL`
    })
  )
}

export type Prepared = Effect.Effect.Success<ReturnType<typeof prepare>>
