/**
 * Test helpers for token-broker stores, published as `@token-broker/core/testing`. Needs `vitest` and
 * `@effect/vitest` (optional peer dependencies of core).
 */
export type { ChildStoreSpec } from "./testing/childProcess.js"
export { fakeEnvelope, fullRecord, minimalRecord, pendingRecord } from "./testing/fixtures.js"
export { type GrantStoreConformanceOptions, grantStoreConformance } from "./testing/suite.js"
