import type * as OidcProviderModule from "oidc-provider"

let loading: Promise<typeof OidcProviderModule> | undefined

/**
 * Loads oidc-provider once. Its module prints "Unsupported runtime" on Node.js 20 when it is first
 * evaluated (every feature dev-idp uses works on Node.js 20); that one line is filtered out so test
 * output stays readable. Every other warning passes through untouched.
 */
export const loadOidcProvider = (): Promise<typeof OidcProviderModule> => {
  loading ??= (async () => {
    const target = globalThis.console
    const original = target.warn
    target.warn = (...args: unknown[]) => {
      if (typeof args[0] === "string" && args[0].includes("Unsupported runtime")) return
      original.apply(target, args)
    }
    try {
      return await import("oidc-provider")
    } finally {
      target.warn = original
    }
  })()
  return loading
}
