import { InvalidRequest, type TokenBrokerError, TokenSource } from "@token-broker/core"
import { Effect, Layer } from "effect"
import * as BrokerClient from "./BrokerClient.js"
import { asUpstreamRejected } from "./internal/errors.js"

/**
 * core's `TokenSource` over a remote HTTP broker: an app switches between the broker in its own process
 * (`TokenSource.layerFromBroker`) and a remote one by config. The broker's answers come back as core's
 * typed errors (by `code`); the broker's own refusals of this app (bad credentials, policy, rate limit)
 * become `UpstreamRejected` / `UpstreamUnavailable`, and an unreachable broker `UpstreamUnavailable`.
 */
export type RemoteTokenSourceOptions = BrokerClient.BrokerClientOptions

type Narrow<E> = Exclude<E, BrokerClient.BrokerRequestError>

/** Maps the client's errors into a method's union: anything outside it becomes the closest member. */
const within =
  <Allowed extends TokenBrokerError>(provider: string, allowed: ReadonlyArray<Allowed["_tag"]>) =>
  (error: BrokerClient.ClientError): Allowed | Narrow<ReturnType<typeof asUpstreamRejected>> => {
    if (error._tag === "BrokerRequestError") return asUpstreamRejected(error, provider)
    if ((allowed as ReadonlyArray<string>).includes(error._tag)) return error as Allowed
    if (error._tag === "UpstreamUnavailable" || error._tag === "UpstreamRejected") return error
    return asUpstreamRejected(
      new BrokerClient.BrokerRequestError({ status: 502, code: error.code, message: error.message }),
      provider
    )
  }

export const make = (options: RemoteTokenSourceOptions): TokenSource.TokenSourceService => {
  const client = BrokerClient.make(options)
  const api = client.effect
  return {
    backgroundToken: (request) =>
      api
        .backgroundToken(request)
        .pipe(
          Effect.mapError(
            within(request.provider, [
              "ConsentRequired",
              "ProviderNotFound",
              "StorageUnavailable",
              "DecryptionFailed",
              "InvalidRequest"
            ] as const)
          )
        ),
    sessionToken: (request) =>
      api
        .exchange({
          subjectToken: request.subjectToken,
          audience: request.audience ?? request.provider,
          scopes: request.scopes
        })
        .pipe(
          Effect.mapError((error) => BrokerClient.exchangeErrorOf(error, request.provider)),
          Effect.mapError((error) =>
            // 400: the scopes themselves; a 403 invalid_scope is this caller's policy (access_denied below)
            error._tag === "BrokerRequestError" && error.code === "invalid_scope" && error.status === 400
              ? new InvalidRequest({ field: "scopes", message: error.message })
              : error
          ),
          Effect.mapError(
            within(request.provider, [
              "InvalidSubjectToken",
              "AudienceMismatch",
              "ProviderNotFound",
              "InvalidRequest"
            ] as const)
          )
        ),
    startAuthorization: (request) =>
      api
        .authorize(request)
        .pipe(
          Effect.mapError(
            within(request.provider, ["ProviderNotFound", "StorageUnavailable", "InvalidRequest"] as const)
          )
        ),
    grantStatus: (ref) =>
      api
        .grant(ref)
        .pipe(Effect.mapError(within(ref.provider, ["StorageUnavailable", "InvalidRequest"] as const))),
    reportRejected: (report) =>
      api
        .reportRejected(report)
        .pipe(Effect.mapError(within(report.provider, ["StorageUnavailable", "InvalidRequest"] as const))),
    revoke: (ref) =>
      api
        .revoke(ref)
        .pipe(
          Effect.mapError(
            within(ref.provider, [
              "ProviderNotFound",
              "StorageUnavailable",
              "DecryptionFailed",
              "InvalidRequest"
            ] as const)
          )
        )
  }
}

/** The TokenSource of a remote broker. */
export const layerRemote = (options: RemoteTokenSourceOptions): Layer.Layer<TokenSource.TokenSource> =>
  Layer.sync(TokenSource.TokenSource, () => make(options))
