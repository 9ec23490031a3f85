import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { AuthorizationServer, metadataUrl, type ProviderConfig } from "../src/index.js"
import { providerConfig, useDevIdp } from "./support/harness.js"

describe("metadataUrl: where each discovery mode reads the metadata", () => {
  it("appends OpenID Connect's well-known path, inserts RFC 8414's before the issuer's path, none has none", () => {
    expect(metadataUrl({ issuer: "https://idp.example" })).toBe(
      "https://idp.example/.well-known/openid-configuration"
    )
    expect(metadataUrl({ issuer: "https://idp.example/realms/a/", discovery: "openid-configuration" })).toBe(
      "https://idp.example/realms/a/.well-known/openid-configuration"
    )
    expect(metadataUrl({ issuer: "https://idp.example/", discovery: "oauth-authorization-server" })).toBe(
      "https://idp.example/.well-known/oauth-authorization-server"
    )
    expect(
      metadataUrl({ issuer: "https://idp.example/tenant", discovery: "oauth-authorization-server" })
    ).toBe("https://idp.example/.well-known/oauth-authorization-server/tenant")
    expect(metadataUrl({ issuer: "https://github.com", discovery: "none" })).toBeNull()
  })
})

/** The client built from `config` alone. */
const clientOf = (config: ProviderConfig) =>
  Effect.flatMap(AuthorizationServer.make([config]), (built) => built.get(config.id))

/** The metadata the client built from `config` uses. */
const metadataOf = (config: ProviderConfig) => Effect.flatMap(clientOf(config), (client) => client.metadata)

describe("ProviderClient.metadata: what the client's requests use", () => {
  describe("RFC 8414 metadata, with a configured endpoint over it", () => {
    const dev = useDevIdp({ plainOAuth: { metadata: "oauth-authorization-server" } })

    it.effect("reads /.well-known/oauth-authorization-server and lays endpoints over it", () =>
      Effect.gen(function* () {
        const metadata = yield* metadataOf(
          providerConfig(dev.idp, {
            discovery: "oauth-authorization-server",
            identityBinding: "same-subject",
            endpoints: { userinfo: dev.idp.endpoints.userinfo }
          })
        )
        expect(metadata.discovery).toBe("oauth-authorization-server")
        expect(metadata.url).toBe(`${dev.idp.issuer}/.well-known/oauth-authorization-server`)
        expect(metadata.document.token_endpoint).toBe(dev.idp.endpoints.token)
        expect(metadata.document.revocation_endpoint).toBe(dev.idp.endpoints.revocation)
        expect(metadata.document.userinfo_endpoint).toBe(dev.idp.endpoints.userinfo)
        expect(metadata.document.grant_types_supported).toEqual(expect.arrayContaining(["refresh_token"]))
      })
    )

    it.effect(
      "control: OpenID Connect discovery against the same provider fails (it serves no such document)",
      () =>
        Effect.gen(function* () {
          const client = yield* clientOf(providerConfig(dev.idp))
          const error = yield* Effect.flip(client.metadata)
          expect(error._tag).toMatch(/^Upstream/)
        })
    )
  })

  describe("discovery none", () => {
    const dev = useDevIdp({ plainOAuth: {} })

    it.effect("is the configured endpoints only, with no request (the issuer does not even answer)", () =>
      Effect.gen(function* () {
        const metadata = yield* metadataOf(
          providerConfig(dev.idp, {
            issuer: "http://127.0.0.1:9",
            discovery: "none",
            identityBinding: "any",
            endpoints: { authorization: dev.idp.endpoints.authorization, token: dev.idp.endpoints.token }
          })
        )
        expect(metadata).toEqual({
          discovery: "none",
          url: null,
          document: {
            issuer: "http://127.0.0.1:9",
            authorization_endpoint: dev.idp.endpoints.authorization,
            token_endpoint: dev.idp.endpoints.token
          }
        })
      })
    )
  })
})
