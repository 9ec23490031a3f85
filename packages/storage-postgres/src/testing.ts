/** Test helpers: a throwaway PostgreSQL cluster that tests may stop and start for real. */
export { type PrivateCluster, startPrivateCluster } from "./testing/PrivateCluster.js"
