/**
 * Test suites for SQL stores, published as `@token-broker/storage-sql/testing`. Needs `vitest`,
 * `@effect/vitest` and `tsx` (optional peer dependencies).
 */
export { type MigrationHarness, migrationSuite } from "./testing/migrations.js"
export { type OutageHarness, outageSuite, type StoppableServer } from "./testing/outage.js"
