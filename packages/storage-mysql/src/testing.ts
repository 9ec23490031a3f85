/** Test helpers: a throwaway MariaDB server that tests may stop and start for real. */
export { type PrivateServer, startPrivateServer } from "./testing/PrivateServer.js"
