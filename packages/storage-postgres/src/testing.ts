/** Test helpers: a throwaway PostgreSQL cluster that tests may stop and start for real, and a plain client. */
export { withClient } from "./testing/client.js"
export { type PrivateCluster, startPrivateCluster } from "./testing/PrivateCluster.js"
