/**
 * The scope rules under the names refreshProtocol.ts and refreshUnderLease.ts import; the rules live in
 * the public `Scopes` module (this file goes once those two import it directly).
 */
export { isSubset, same as sameScopes } from "../Scopes.js"
