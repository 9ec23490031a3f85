import { Effect, Redacted } from "effect"
import { importJWK, type JWK } from "jose"
import * as client from "openid-client"
import type { ConfigInvalid } from "../Errors.js"
import type { ClientAuthentication } from "../Provider.js"

/** Turns a provider's configured client authentication into openid-client's, importing a private JWK. */
export const clientAuth = (
  authentication: ClientAuthentication,
  invalid: () => ConfigInvalid
): Effect.Effect<client.ClientAuth, ConfigInvalid> => {
  switch (authentication.method) {
    case "client_secret_basic":
      return Effect.succeed(
        authentication.encoding === "plain"
          ? plainBasic(authentication.clientSecret)
          : client.ClientSecretBasic(Redacted.value(authentication.clientSecret))
      )
    case "client_secret_post":
      return Effect.succeed(client.ClientSecretPost(Redacted.value(authentication.clientSecret)))
    case "none":
      return Effect.succeed(client.None())
    case "private_key_jwt":
      return Effect.tryPromise({
        try: async () => {
          const jwk = JSON.parse(Redacted.value(authentication.privateJwk)) as JWK
          if (typeof jwk.d !== "string") throw new TypeError("not a private key")
          const alg = jwk.alg ?? defaultAlg(jwk)
          const key = await importJWK(jwk, alg)
          if (key instanceof Uint8Array || key.type !== "private") throw new TypeError("not a private key")
          return client.PrivateKeyJwt(jwk.kid === undefined ? key : { key, kid: jwk.kid })
        },
        catch: invalid
      })
  }
}

/**
 * `client_secret_basic` without RFC 6749's form-encoding of id and secret: openid-client offers only the
 * encoded form, which providers that do not decode the credentials refuse (F24).
 */
const plainBasic =
  (secret: Redacted.Redacted<string>): client.ClientAuth =>
  (_server, metadata, _body, headers) => {
    const credentials = Buffer.from(`${metadata.client_id}:${Redacted.value(secret)}`, "utf8").toString(
      "base64"
    )
    headers.set("authorization", `Basic ${credentials}`)
  }

const defaultAlg = (jwk: JWK): string | undefined => {
  if (jwk.kty === "RSA") return "RS256"
  if (jwk.kty === "EC") return { "P-256": "ES256", "P-384": "ES384", "P-521": "ES512" }[jwk.crv ?? ""]
  if (jwk.kty === "OKP") return "EdDSA"
  return undefined
}
