/**
 * Test helpers for token-broker stores, published as `@token-broker/core/testing`. Needs `vitest` and
 * `@effect/vitest` (optional peer dependencies of core).
 */
export type { ChildStoreSpec } from "./internal/conformance/childProcess.js"
export { fakeEnvelope, fullRecord, minimalRecord, pendingRecord } from "./internal/conformance/fixtures.js"
export { type GrantStoreConformanceOptions, grantStoreConformance } from "./internal/conformance/suite.js"
