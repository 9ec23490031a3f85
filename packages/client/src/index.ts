/**
 * @token-broker/client: a typed client of the token-broker HTTP API, and core's TokenSource over it.
 */
export * as BrokerClient from "./BrokerClient.js"
export { BrokerRequestError } from "./BrokerClient.js"
export * as RemoteTokenSource from "./RemoteTokenSource.js"
export { layerRemote } from "./RemoteTokenSource.js"
