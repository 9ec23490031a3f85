/** @token-broker/dev-idp: a real OpenID Provider (oidc-provider) for tests and the demo, with a stand-in notes API, fault injection and counters. */
export { type BuiltClients, DefaultClientIds, type DevIdpClient, defaultRedirectUri } from "./Clients.js"
export {
  type DevIdpClientMetadata,
  type DevIdpOptions,
  DevIdpOptionsSchema,
  type DevIdpResource,
  type DevIdpResourceInput,
  type DevIdpUser,
  loadDevIdpConfigFile,
  parseDevIdpOptions,
  type ResolvedDevIdpOptions
} from "./Config.js"
export { type CounterFilter, type CounterSnapshot, TokenCounters } from "./Counters.js"
export {
  type DevIdp,
  type DevIdpEndpoints,
  type GrantSelector,
  OPAQUE_RESOURCE,
  startDevIdp
} from "./DevIdp.js"
export { type ActiveFault, type Fault, type FaultSpec, FaultSpecSchema, Faults } from "./Faults.js"
export {
  clientAuthentication,
  DevIdpLoginError,
  type DriveAuthorizationOptions,
  driveAuthorization,
  type LoginErrorCode,
  type LoginOptions,
  type TokenResponse
} from "./LoginDriver.js"
export { NOTES_READ, NOTES_WRITE, type Note, NotesApi, type NotesApiOptions } from "./NotesApi.js"
export { type ReuseRecord, Reuses } from "./Reuses.js"
export { type RevocationRecord, Revocations } from "./Revocations.js"
export { type RotationRecord, Rotations } from "./Rotations.js"
