/**
 * @token-broker/core: the token lifecycle as Effect services.
 *
 * Services are exported as namespaces (`GrantStore.GrantStore` is the tag, `GrantStore.layerMemory` a
 * layer); errors and record types are exported by name.
 */
export * as AccessTokenCache from "./AccessTokenCache.js"
export * as AuthorizationServer from "./AuthorizationServer.js"
export { consentFailure, RESULT_PAGE_HEADERS } from "./ConsentPage.js"
export * from "./Errors.js"
export {
  type CreateTokenBrokerOptions,
  createTokenBroker,
  type PlainToken,
  type TokenBrokerClient
} from "./Facade.js"
export * from "./Grant.js"
export * as GrantStore from "./GrantStore.js"
export { type LinkedSignal, linkedSignal } from "./internal/linkedSignal.js"
export { requestWithDeadline } from "./internal/requestWithDeadline.js"
export * as KeyRing from "./KeyRing.js"
export * as KeyRotation from "./KeyRotation.js"
export * as Metrics from "./Metrics.js"
export * from "./Provider.js"
export { isProviderId, PROVIDER_ID_PATTERN, PROVIDER_ID_RULE, ProviderId } from "./ProviderId.js"
export * as Scopes from "./Scopes.js"
export * as TokenBroker from "./TokenBroker.js"
export * as TokenSource from "./TokenSource.js"
export * as TokenVerifier from "./TokenVerifier.js"
export * as ZodIssues from "./ZodIssues.js"
export {
  firstZodProblem,
  formatZodIssues,
  type ZodProblem,
  zodIssueMessage
} from "./ZodIssues.js"
